package sntp

import (
	"context"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"
)

func TestTimestampRoundTrip(t *testing.T) {
	in := time.Date(2024, 2, 29, 12, 34, 56, 789_000_000, time.UTC)
	out := Time(Timestamp(in))
	if d := out.Sub(in); d < -time.Microsecond || d > time.Microsecond {
		t.Errorf("round trip off by %v", d)
	}
	// 1970 is 2208988800 s after 1900.
	if Timestamp(time.Unix(0, 0))>>32 != 2208988800 {
		t.Errorf("epoch: %d", Timestamp(time.Unix(0, 0))>>32)
	}
}

// server answers on loopback as an NTP server whose clock runs ahead of
// the real one by ahead, first sending a stale answer that must be ignored.
func server(t *testing.T, ahead time.Duration, mutate func([]byte)) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 48 {
				continue
			}
			stale := make([]byte, 48)
			stale[0] = 4<<3 | 4
			stale[1] = 2
			binary.BigEndian.PutUint64(stale[24:], 12345)
			binary.BigEndian.PutUint64(stale[40:], 1)
			pc.WriteTo(stale, addr)

			resp := make([]byte, 48)
			resp[0] = 4<<3 | 4
			resp[1] = 2
			copy(resp[24:32], buf[40:48])
			binary.BigEndian.PutUint64(resp[32:], Timestamp(time.Now().Add(ahead)))
			binary.BigEndian.PutUint64(resp[40:], Timestamp(time.Now().Add(ahead)))
			if mutate != nil {
				mutate(resp)
			}
			pc.WriteTo(resp, addr)
		}
	}()
	return pc.LocalAddr().String()
}

func TestQueryMeasuresOffset(t *testing.T) {
	addr := server(t, 90*time.Second, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	r, err := Query(ctx, addr, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Offset - 90*time.Second; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("offset %v, want about 90s", r.Offset)
	}
	if r.Delay < 0 || r.Delay > time.Second || r.Stratum != 2 || r.Server != addr {
		t.Errorf("got %+v", r)
	}
	// A local clock 10 minutes slow sees the server 10 minutes ahead too.
	r, err = Query(ctx, addr, func() time.Time { return time.Now().Add(-10 * time.Minute) })
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Offset - (90*time.Second + 10*time.Minute); d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Errorf("offset %v", r.Offset)
	}
}

func TestQueryRejectsBadAnswers(t *testing.T) {
	for name, c := range map[string]struct {
		mutate func([]byte)
		want   string
	}{
		"kiss":          {func(b []byte) { b[1] = 0; copy(b[12:], "RATE") }, "kiss"},
		"unsynced":      {func(b []byte) { b[0] |= 3 << 6 }, "not synchronised"},
		"broadcastmode": {func(b []byte) { b[0] = 4<<3 | 5 }, "mode 5"},
	} {
		t.Run(name, func(t *testing.T) {
			addr := server(t, 0, c.mutate)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := Query(ctx, addr, time.Now)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want %q", err, c.want)
			}
		})
	}
}

func TestQueryTimesOutOnSilence(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := Query(ctx, pc.LocalAddr().String(), time.Now); err == nil {
		t.Error("silent server answered")
	}
}
