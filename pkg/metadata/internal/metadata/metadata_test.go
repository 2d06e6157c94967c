package metadata

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	keyA = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnd7v9VfGkM0T0mDpzb3nTqq1qjBnJ7cPZ3C8g2XzVQ a@x"
	keyB = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx0Zf6sO6+q6iJqmVQz3M6y5i2wE4tV8k9C5pYb0x1Z b@y"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, c := range files {
		p := filepath.Join(dir, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func iso(t *testing.T, label string, files map[string]string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "seed.iso")
	cmd := exec.Command("xorriso", "-as", "mkisofs", "-quiet", "-V", label, "-J", "-R", "-o", out, writeTree(t, files))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, b)
	}
	return out
}

const userData = "#cloud-config\nssh_authorized_keys:\n  - " + keyB + "\nruncmd:\n  - echo hi\n"

func TestReadNoCloudISO(t *testing.T) {
	p := iso(t, "cidata", map[string]string{
		"meta-data": "instance-id: i-1\nlocal-hostname: web-1\npublic-keys:\n  - \"" + keyA + "\"\n",
		"user-data": userData,
	})
	d, err := ReadDrive(p)
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "web-1" || string(d.UserData) != userData || !reflect.DeepEqual(d.SSHKeys, []string{keyA, keyB}) {
		t.Errorf("got %+v", d)
	}
}

func TestReadOpenStackISO(t *testing.T) {
	p := iso(t, "config-2", map[string]string{
		"openstack/latest/meta_data.json": `{"uuid":"u","hostname":"os-1.novalocal","public_keys":{"z":"` + keyB + `","a":"` + keyA + `"}}`,
		"openstack/latest/user_data":      "#!/bin/sh\necho hi\n",
	})
	d, err := ReadDrive(p)
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "os-1.novalocal" || string(d.UserData) != "#!/bin/sh\necho hi\n" || !reflect.DeepEqual(d.SSHKeys, []string{keyA, keyB}) {
		t.Errorf("got %+v", d)
	}
}

func TestReadNoCloudFAT32(t *testing.T) {
	img := filepath.Join(t.TempDir(), "seed.img")
	os.WriteFile(img, nil, 0o644)
	os.Truncate(img, 40<<20)
	if b, err := exec.Command("mkfs.vfat", "-F", "32", "-n", "CIDATA", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.vfat: %v\n%s", err, b)
	}
	src := writeTree(t, map[string]string{"user-data": userData, "meta-data": "local-hostname: fat-1\n"})
	cmd := exec.Command("mcopy", "-i", img, filepath.Join(src, "user-data"), filepath.Join(src, "meta-data"), "::/")
	cmd.Env = append(os.Environ(), "MTOOLS_SKIP_CHECK=1")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mcopy: %v\n%s", err, b)
	}
	d, err := ReadDrive(img)
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "fat-1" || !reflect.DeepEqual(d.SSHKeys, []string{keyB}) {
		t.Errorf("got %+v", d)
	}
}

func TestReadDriveWithoutData(t *testing.T) {
	if _, err := ReadDrive(iso(t, "cidata", map[string]string{"other": "x"})); err == nil {
		t.Error("empty drive accepted")
	}
}

func TestParseNoCloudMetaForms(t *testing.T) {
	var d Data
	ParseNoCloudMeta("hostname: h\npublic-keys: ["+keyA+", '"+keyB+"']\n", &d)
	if d.Hostname != "h" || !reflect.DeepEqual(d.SSHKeys, []string{keyA, keyB}) {
		t.Errorf("got %+v", d)
	}
	d = Data{}
	ParseNoCloudMeta("public-keys: "+keyA+"\n", &d)
	if !reflect.DeepEqual(d.SSHKeys, []string{keyA}) {
		t.Errorf("got %+v", d)
	}
	d = Data{}
	ParseCloudConfig("#!/bin/sh\nssh_authorized_keys:\n  - "+keyA+"\n", &d)
	if d.SSHKeys != nil {
		t.Error("a shell script was read as cloud-config")
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, Data{Hostname: "h", UserData: []byte("ud"), SSHKeys: []string{keyA, keyB}}); err != nil {
		t.Fatal(err)
	}
	for n, want := range map[string]string{"hostname": "h\n", "userdata": "ud", "ssh/authorized_keys": keyA + "\n" + keyB + "\n"} {
		if b, _ := os.ReadFile(filepath.Join(dir, n)); string(b) != want {
			t.Errorf("%s = %q, want %q", n, b, want)
		}
	}
}

// The servers below are real HTTP servers on loopback standing in for the
// clouds' endpoints, each insisting on its cloud's protocol.
func TestAWSIMDSv2(t *testing.T) {
	const token = "tok-123"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/latest/api/token" {
			if r.Method != http.MethodPut || r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.Write([]byte(token))
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/latest/meta-data/local-hostname":
			w.Write([]byte("ip-10-0-0-1.ec2.internal"))
		case "/latest/user-data":
			w.Write([]byte("ud"))
		case "/latest/meta-data/public-keys/":
			w.Write([]byte("0=mykey\n1=other"))
		case "/latest/meta-data/public-keys/0/openssh-key":
			w.Write([]byte(keyA + "\n"))
		case "/latest/meta-data/public-keys/1/openssh-key":
			w.Write([]byte(keyB))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	d, err := NewClient(2*time.Second).AWS(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	want := Data{Source: "aws", Hostname: "ip-10-0-0-1.ec2.internal", UserData: []byte("ud"), SSHKeys: []string{keyA, keyB}}
	if !reflect.DeepEqual(d, want) {
		t.Errorf("got %+v", d)
	}
}

func TestGCE(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		switch r.URL.Path {
		case "/computeMetadata/v1/instance/hostname":
			w.Write([]byte("vm-1.c.project.internal"))
		case "/computeMetadata/v1/instance/attributes/ssh-keys":
			w.Write([]byte("alice:" + keyA + "\n"))
		case "/computeMetadata/v1/project/attributes/ssh-keys":
			w.Write([]byte("bob:" + keyB + "\nalice:" + keyA))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	d, err := NewClient(2*time.Second).GCE(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "vm-1" || d.UserData != nil || !reflect.DeepEqual(d.SSHKeys, []string{keyA, keyB}) {
		t.Errorf("got %+v", d)
	}
}

func TestOpenStackService(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/openstack/latest/meta_data.json":
			w.Write([]byte(`{"name":"os-vm","keys":[{"name":"k","type":"ssh","data":"` + keyA + `"}]}`))
		case "/openstack/latest/user_data":
			w.Write([]byte("ud"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	d, err := NewClient(2*time.Second).OpenStack(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if d.Hostname != "os-vm" || string(d.UserData) != "ud" || !reflect.DeepEqual(d.SSHKeys, []string{keyA}) {
		t.Errorf("got %+v", d)
	}
}

func TestServicesFailFastElsewhere(t *testing.T) {
	// An AWS probe against a server of another kind fails, and a dead
	// address fails within the client's timeout.
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	c := NewClient(500 * time.Millisecond)
	if _, err := c.AWS(context.Background(), srv.URL); err == nil {
		t.Error("aws accepted a 404 server")
	}
	if _, err := c.GCE(context.Background(), srv.URL); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("gce: %v", err)
	}
	srv.Close()
	start := time.Now()
	if _, err := c.OpenStack(context.Background(), srv.URL); err == nil {
		t.Error("closed server answered")
	}
	if time.Since(start) > 2*time.Second {
		t.Error("timeout not honoured")
	}
}

// TestHostnamePrecedence checks where the host name comes from: the
// user-data's #cloud-config hostname wins over the meta-data's
// local-hostname (as in cloud-init), and data with neither sets none, so
// the image keeps its own.
func TestHostnamePrecedence(t *testing.T) {
	for _, c := range []struct{ meta, user, want string }{
		{"instance-id: i\nlocal-hostname: from-meta\n", "#cloud-config\nhostname: from-user\n", "from-user"},
		{"instance-id: i\nlocal-hostname: from-meta\n", userData, "from-meta"},
		{"instance-id: i\n", userData, ""},
		{"instance-id: i\n", "#!/bin/sh\nhostname: not-yaml\n", ""},
	} {
		d, err := ReadDriveDir(writeTree(t, map[string]string{"meta-data": c.meta, "user-data": c.user}))
		if err != nil {
			t.Fatal(err)
		}
		if d.Hostname != c.want {
			t.Errorf("meta-data %q, user-data %q: hostname %q, want %q", c.meta, c.user, d.Hostname, c.want)
		}
	}
}
