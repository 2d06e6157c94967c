// Package tools carries the build-time helper packages keel needs
// whatever directory it is run from.
package tools

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed efi-stub/package.toml grub-pc/package.toml isolinux/package.toml mkfs-ext4/package.toml raspi-firmware/package.toml
var packages embed.FS

// Materialize writes the package directory of the named tool (e.g.
// "efi-stub") under dir and returns its path, so the package builder can
// build it like any other package.
func Materialize(name, dir string) (string, error) {
	sub, err := fs.Sub(packages, name)
	if err != nil {
		return "", fmt.Errorf("tool %q: %w", name, err)
	}
	dst := filepath.Join(dir, name)
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dst, p)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		return "", fmt.Errorf("tool %q: %w", name, err)
	}
	return dst, nil
}
