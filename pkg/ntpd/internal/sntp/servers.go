package sntp

import (
	"net"
	"strings"
)

// DefaultServer is used when nothing names a server.
const DefaultServer = "pool.ntp.org"

// ParseServers reads server names from a config text (/run/config/ntp, as
// the metadata package writes it): whitespace- or newline-separated, '#'
// comments, an optional "server " keyword as in ntp.conf. Each gets port
// 123 unless it has one.
func ParseServers(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) > 0 && (f[0] == "server" || f[0] == "pool") {
			if len(f) < 2 {
				continue
			}
			f = f[1:2] // options after the name (iburst, …) mean nothing here
		}
		for _, s := range f {
			out = append(out, WithPort(s))
		}
	}
	return out
}

// WithPort adds NTP's port 123 to a host that has none.
func WithPort(s string) string {
	if _, _, err := net.SplitHostPort(s); err == nil {
		return s
	}
	return net.JoinHostPort(strings.Trim(s, "[]"), "123")
}
