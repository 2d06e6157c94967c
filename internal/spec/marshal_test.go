package spec

import (
	"bytes"
	"reflect"
	"testing"
)

// full uses every key of the spec.
const full = `name = "full"
arch = ["amd64", "arm64"]
init = ["./init", "registry.example/ca:1@sha256:abc"]

[kernel]
image = "./kernel"
cmdline = "console=ttyS0 quote=\"x\" tab=\t"
modules = ["virtio_net"]

[[onboot]]
name = "sysctl"
image = "./pkg/sysctl"
command = []
capabilities = []

[[service]]
name = "sshd"
image = "./pkg/sshd"
command = ["/usr/sbin/sshd", "-D"]
env = ["A=1"]
cwd = "/"
capabilities = ["CAP_NET_BIND_SERVICE", "all"]
ambient = ["CAP_NET_BIND_SERVICE"]
binds = ["/var:/var:rshared"]
tmpfs = ["/tmp:size=64m"]
net = "host"
pid = "new"
ipc = "/run/ns/ipc"
uts = "host"
readonly = true
uid = 0
gid = 4294967295
additional-gids = [1, 2]
no-new-privileges = false
hostname = "sshd.local"
oom-score-adj = -1000
rlimits = ["nofile,1,2"]
restart = "always"
sysctl = { "kernel.shmmni" = "1", "kernel.msgmax" = 5 }
mounts = []

[[service.devices]]
path = "/dev/ttyS0"
type = "c"
major = 4
minor = 64
mode = "0620"
permissions = "rwm"

[service.resources]
memory = "64M"
cpu = "1.5"
pids = 10

[service.runtime]
mkdir = ["/var/lib/sshd"]

[[service.runtime.interfaces]]
name = "eth1"
add = "veth"
peer = "veth-sshd"
create-in-ns = true

[service.runtime.bind-ns]
net = "/run/netns/sshd"
cgroup = "/run/cg"

[[service]]
name = "other"
image = "./pkg/other"
devices = []

[service.resources]

[[onshutdown]]
name = "flush"
image = "./pkg/flush"

[[file]]
path = "/etc/motd"
contents = "héllo\n\u0001\"\\"
mode = "0600"
uid = 1
gid = 2

[[file]]
path = "/var/lib/x"
directory = true

[[file]]
path = "/etc/y"
source = "y"

[[volume]]
name = "data"
size = "1G"

[output]
formats = ["raw", "vmdk"]
size = "2GiB"
root = "erofs"
memory = "2GiB"
initrd-max-percent = 40
verity = true
verity-corruption = "log"
`

func TestMarshalRoundTrip(t *testing.T) {
	s, err := Parse("full.toml", []byte(full))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := Parse("full.toml", b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(s, s2) {
		t.Fatalf("round trip differs:\n%+v\n%+v\n%s", s, s2, b)
	}
	b2, _ := Marshal(s2)
	if !bytes.Equal(b, b2) {
		t.Fatalf("not deterministic:\n%s\n%s", b, b2)
	}
	// Set-but-empty lists must survive: they override package defaults.
	if s2.Onboot[0].Capabilities == nil || s2.Onboot[0].Command == nil || s2.Services[1].Devices == nil || s2.Services[1].Resources == nil {
		t.Fatalf("empty lists lost:\n%s", b)
	}
	if got := s2.Services[0].Sysctl; !reflect.DeepEqual(got, map[string]string{"kernel.shmmni": "1", "kernel.msgmax": "5"}) {
		t.Fatalf("sysctl: %v", got)
	}
}

func TestMarshalPackageRoundTrip(t *testing.T) {
	pk, err := ParsePackage("package.toml", []byte(fullPackage))
	if err != nil {
		t.Fatal(err)
	}
	b, err := MarshalPackage(pk)
	if err != nil {
		t.Fatal(err)
	}
	pk2, err := ParsePackage("package.toml", b)
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if !reflect.DeepEqual(pk, pk2) {
		t.Fatalf("round trip differs:\n%s", b)
	}
}
