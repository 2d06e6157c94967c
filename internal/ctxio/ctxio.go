// Package ctxio stops reads and writes once a context is done. Encoders
// and image writers do their work between calls to the readers and
// writers they are given; wrapping those makes any of them end promptly
// when the build is cancelled, without each checking a context itself.
package ctxio

import (
	"context"
	"io"
)

// Reader returns r, failing every Read once ctx is done.
func Reader(ctx context.Context, r io.Reader) io.Reader { return reader{ctx, r} }

// ReaderAt returns r, failing every ReadAt once ctx is done.
func ReaderAt(ctx context.Context, r io.ReaderAt) io.ReaderAt { return readerAt{ctx, r} }

// Writer returns w, failing every Write once ctx is done.
func Writer(ctx context.Context, w io.Writer) io.Writer { return writer{ctx, w} }

// WriterAt returns w, failing every WriteAt once ctx is done.
func WriterAt(ctx context.Context, w io.WriterAt) io.WriterAt { return writerAt{ctx, w} }

// WriteSeeker returns w, failing every Write and Seek once ctx is done.
func WriteSeeker(ctx context.Context, w io.WriteSeeker) io.WriteSeeker { return writeSeeker{ctx, w} }

type reader struct {
	ctx context.Context
	r   io.Reader
}

func (r reader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

type readerAt struct {
	ctx context.Context
	r   io.ReaderAt
}

func (r readerAt) ReadAt(p []byte, off int64) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.ReadAt(p, off)
}

type writer struct {
	ctx context.Context
	w   io.Writer
}

func (w writer) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

type writerAt struct {
	ctx context.Context
	w   io.WriterAt
}

func (w writerAt) WriteAt(p []byte, off int64) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.WriteAt(p, off)
}

type writeSeeker struct {
	ctx context.Context
	w   io.WriteSeeker
}

func (w writeSeeker) Write(p []byte) (int, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Write(p)
}

func (w writeSeeker) Seek(off int64, whence int) (int64, error) {
	if err := w.ctx.Err(); err != nil {
		return 0, err
	}
	return w.w.Seek(off, whence)
}
