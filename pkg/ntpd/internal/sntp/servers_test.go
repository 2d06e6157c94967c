package sntp

import (
	"reflect"
	"testing"
)

func TestParseServers(t *testing.T) {
	got := ParseServers("# comment\nserver time.example.com iburst\npool 2.pool.ntp.org\n10.0.0.1 10.0.0.2:1123\n[fd00::1]\nserver\n")
	want := []string{"time.example.com:123", "2.pool.ntp.org:123", "10.0.0.1:123", "10.0.0.2:1123", "[fd00::1]:123"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
	if ParseServers("\n# none\n") != nil {
		t.Error("empty config gave servers")
	}
}
