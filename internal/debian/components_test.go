package debian

import (
	"context"
	"strings"
	"testing"

	"github.com/keelos/keel/internal/testenv"
)

// TestResolveComponentsRealMirror resolves a package that lives outside
// main (raspi-firmware, in non-free-firmware) by naming the components,
// while the client's default (main) does not find it.
func TestResolveComponentsRealMirror(t *testing.T) {
	testenv.NeedNetwork(t)
	ctx := context.Background()
	c := NewClient(testMirror(t), sharedStore(t))

	if _, err := c.Resolve(ctx, testSuite, "arm64", []string{"raspi-firmware"}, nil); err == nil {
		t.Fatal("raspi-firmware resolved from main alone")
	}
	got, err := c.ResolveIn(ctx, testSuite, "arm64", []string{"main", "non-free-firmware"}, []string{"raspi-firmware"}, []string{"dpkg"})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Package{}
	for _, p := range got {
		byName[p.Name] = p
	}
	fw, ok := byName["raspi-firmware"]
	if !ok {
		t.Fatalf("raspi-firmware not resolved: %v", names(got))
	}
	if !strings.HasPrefix(fw.Filename, "pool/non-free-firmware/") || fw.SHA256 == "" {
		t.Errorf("raspi-firmware: file %q sha256 %q", fw.Filename, fw.SHA256)
	}
	// Its dependency comes from main, through the same resolve.
	if _, ok := byName["dosfstools"]; !ok {
		t.Errorf("dosfstools (main) not resolved with raspi-firmware: %v", names(got))
	}
	if _, err := c.Fetch(ctx, fw); err != nil {
		t.Fatal(err)
	}

	_, err = c.ResolveIn(ctx, testSuite, "arm64", []string{"no-such-component"}, []string{"raspi-firmware"}, nil)
	if err == nil || !strings.Contains(err.Error(), `no component "no-such-component"`) {
		t.Errorf("unknown component: err = %v", err)
	}
}
