package spec

import (
	"strings"
	"testing"

	"github.com/keelos/keel/internal/layout"
)

// service wraps container keys in a valid spec.
func service(keys string) string {
	return kernel + "\n[[service]]\nname = \"svc\"\nimage = \"./svc\"\n" + keys
}

func TestValidationRules(t *testing.T) {
	cases := []struct {
		name, doc, want string // want: "" = accepted, else a substring of the only error
	}{
		{"name ok", `name = "my-host1"` + "\n" + kernel, ""},
		{"name upper", `name = "Host"` + "\n" + kernel, `name: "Host" is not a valid name`},
		{"name dash first", `name = "-x"` + "\n" + kernel, `name: "-x" is not a valid name`},
		{"arch", `arch = ["amd64", "arm46"]` + "\n" + kernel, `arch: unknown architecture "arm46" (one of amd64, arm64); did you mean "arm64"?`},
		{"empty init", `init = [""]` + "\n" + kernel, `init: empty image reference`},
		{"empty kernel image", "[kernel]\nimage = \"\"\n", `kernel.image: empty image reference`},
		{"module", kernel + `modules = ["virtio/net"]`, `kernel.modules: "virtio/net" is not a module name`},
		{"container without name", kernel + "[[onboot]]\nimage = \"./x\"\n", `onboot[0].name: required`},
		{"container without image", kernel + "[[onboot]]\nname = \"x\"\n", `onboot[x].image: required`},
		{"container bad name", kernel + "[[onshutdown]]\nname = \"a_b\"\nimage = \"./x\"\n", `onshutdown[a_b].name: "a_b" is not a valid name`},
		{"restart on onboot", kernel + "[[onboot]]\nname = \"x\"\nimage = \"./x\"\nrestart = \"always\"\n", `onboot[x].restart: restart applies only to [[service]] entries`},
		{"restart ok", service(`restart = "on-failure"`), ""},
		{"restart bad", service(`restart = "allways"`), `service[svc].restart: unknown restart policy "allways" (one of always, on-failure, never); did you mean "always"?`},
		{"capabilities forms", service(`capabilities = ["CAP_NET_ADMIN", "net_raw", "SYS_ADMIN", "cap_bpf", "all", "ALL"]`), ""},
		{"ambient bad", service(`ambient = ["NET_ADMN"]`), `service[svc].ambient: unknown capability "NET_ADMN"; did you mean "CAP_NET_ADMIN"?`},
		{"env", service(`env = ["A=1", "B"]`), `service[svc].env: "B" is not KEY=value`},
		{"cwd relative", service(`cwd = "tmp"`), `service[svc].cwd: "tmp" is not an absolute path`},
		{"binds ok", service(`binds = ["/var:/var:rw,rshared", "/etc/resolv.conf:/etc/resolv.conf"]`), ""},
		{"binds volume", service(`binds = ["data:/var/lib/app", "data:/srv:ro"]`), ""},
		{"binds relative", service(`binds = ["./var:/var"]`), `service[svc].binds: bind "./var:/var": the source is neither an absolute clean path nor a volume name`},
		{"binds volume dst", service(`binds = ["data:var"]`), `bind "data:var": "var" is not an absolute clean path`},
		{"binds option", service(`binds = ["/var:/var:rshard"]`), `unknown option "rshard"; did you mean "rshared"?`},
		{"binds shape", service(`binds = ["/var"]`), `"/var" is not SRC:DST[:OPTIONS]`},
		{"tmpfs ok", service(`tmpfs = ["/tmp:size=64m,mode=1777,nosuid", "/run"]`), ""},
		{"tmpfs percent", service(`tmpfs = ["/tmp:size=50%"]`), ""},
		{"tmpfs bad percent", service(`tmpfs = ["/tmp:size=x%"]`), `size="x%" is not a size or a percentage`},
		{"tmpfs size", service(`tmpfs = ["/tmp:size=lots"]`), `size "lots"`},
		{"tmpfs mode", service(`tmpfs = ["/tmp:mode=999"]`), `mode "999": want octal digits`},
		{"tmpfs path", service(`tmpfs = ["tmp"]`), `tmpfs "tmp": "tmp" is not an absolute clean path`},
		{"mounts", service("[[service.mounts]]\ntype = \"proc\"\ndestination = \"proc\"\n"), `service[svc].mounts[proc].destination: "proc" is not an absolute path`},
		{"mounts type", service("[[service.mounts]]\ndestination = \"/proc\"\n"), `service[svc].mounts[/proc].type: required`},
		{"devices ok", service("[[service.devices]]\npath = \"/dev/tty*\"\nmode = \"0620\"\npermissions = \"rw\"\n"), ""},
		{"devices path", service("[[service.devices]]\npath = \"/tmp/x\"\n"), `"/tmp/x" is not a path under /dev/`},
		{"devices type", service("[[service.devices]]\npath = \"/dev/x\"\ntype = \"p\"\n"), `"p" is not c or b`},
		{"devices perms", service("[[service.devices]]\npath = \"/dev/x\"\npermissions = \"rwx\"\n"), `"rwx" is not a combination of r, w and m`},
		{"namespaces ok", service("net = \"host\"\npid = \"new\"\nipc = \"/run/ns/ipc\"\n"), ""},
		{"namespace bad", service(`net = "hots"`), `service[svc].net: "hots" is not new, host or an absolute path; did you mean "host"?`},
		{"namespace unclean", service(`uts = "/run/../ns"`), `is not a clean path`},
		{"hostname", service(`hostname = "bad_host"`), `"bad_host" is not a valid host name`},
		{"oom", service(`oom-score-adj = -1001`), `-1001 is outside -1000..1000`},
		{"sysctl ok", service("sysctl = { \"net.ipv4.ip_forward\" = \"1\", \"kernel.shmmax\" = 10, \"fs.mqueue.msg_max\" = \"20\", \"kernel.domainname\" = \"lan\" }\n"), ""},
		{"sysctl dotted", service("[service.sysctl]\nkernel.msgmnb = 5\nnet.ipv4.conf.all.forwarding = true\n"), ""},
		{"sysctl name", service(`sysctl = { forward = "1" }`), `service[svc].sysctl.forward: "forward" is not a sysctl name`},
		{"sysctl empty", service(`sysctl = { "net.ipv4.ip_forward" = "" }`), `service[svc].sysctl.net.ipv4.ip_forward: empty value`},
		{"sysctl host", service(`sysctl = { "kernel.core_pattern" = "|/pwn" }`), `service[svc].sysctl.kernel.core_pattern: "kernel.core_pattern" is a host sysctl: a container may set only those of its own namespaces`},
		{"sysctl host vm", service(`sysctl = { "vm.swappiness" = "10" }`), `"vm.swappiness" is a host sysctl`},
		{"sysctl host points to pkg/sysctl", service(`sysctl = { "kernel.panic" = "10" }`), `set host sysctls with the sysctl onboot package (pkg/sysctl) and a [[file]] in /etc/sysctl.d`},
		{"sysctl host net", service("net = \"host\"\nsysctl = { \"net.ipv4.ip_forward\" = \"1\" }\n"), `service[svc].sysctl.net.ipv4.ip_forward: "net.ipv4.ip_forward" needs the container's own net namespace, but net = "host"`},
		{"sysctl host ipc", service("ipc = \"host\"\nsysctl = { \"kernel.shmmax\" = \"1\" }\n"), `needs the container's own ipc namespace, but ipc = "host"`},
		{"sysctl host uts", service("uts = \"host\"\nsysctl = { \"kernel.hostname\" = \"x\" }\n"), `needs the container's own uts namespace, but uts = "host"`},
		{"sysctl joined net", service("net = \"/run/netns/x\"\nsysctl = { \"net.ipv4.ip_forward\" = \"1\" }\n"), ""},
		{"command empty program", service(`command = ["", "-x"]`), `service[svc].command: empty program name`},
		{"command NUL", service("command = [\"/bin/x\", \"a\\u0000b\"]"), `contains a NUL byte`},
		{"allow-image-privileges ok", service(`allow-image-privileges = ["capabilities", "binds", "no-new-privileges", "additional-gids"]`), ""},
		{"allow-image-privileges all", service(`allow-image-privileges = ["all"]`), ""},
		{"allow-image-privileges bad", service(`allow-image-privileges = ["capabilites"]`), `service[svc].allow-image-privileges: "capabilites" is not a privilege key (one of capabilities, ambient, net, pid, ipc, uts, cgroup, binds, mounts, devices, runtime, sysctl, uid, gid, additional-gids, oom-score-adj, rlimits, no-new-privileges, seccomp, all); did you mean "capabilities"?`},
		{"allow-image-privileges not a privilege", service(`allow-image-privileges = ["env"]`), `"env" is not a privilege key`},
		{"rlimits ok", service(`rlimits = ["RLIMIT_NOFILE,1024,4096", "nproc,unlimited,unlimited", "core,0,0"]`), ""},
		{"rlimits name", service(`rlimits = ["nofiles,1,2"]`), `unknown rlimit "nofiles"`},
		{"rlimits order", service(`rlimits = ["nofile,10,2"]`), `soft limit above hard limit`},
		{"rlimits shape", service(`rlimits = ["nofile,10"]`), `want NAME,SOFT,HARD`},
		{"resources ok", service("[service.resources]\nmemory = \"256MiB\"\ncpu = \"0.5\"\npids = 100\n"), ""},
		{"resources memory", service("[service.resources]\nmemory = \"lots\"\n"), `service[svc].resources.memory: size "lots"`},
		{"resources cpu", service("[service.resources]\ncpu = \"-1\"\n"), `cpu "-1": want a positive decimal number`},
		{"resources cpu zero", service("[service.resources]\ncpu = \"0.0\"\n"), `cpu "0.0": want a positive decimal number`},
		{"resources pids", service("[service.resources]\npids = 0\n"), `resources.pids: must be above zero`},
		{"runtime ok", service("[service.runtime]\nmkdir = [\"/var/lib/x\"]\n[[service.runtime.interfaces]]\nname = \"eth1\"\nadd = \"veth\"\npeer = \"veth-x\"\n[service.runtime.bind-ns]\nnet = \"/run/netns/x\"\n"), ""},
		{"runtime mkdir", service("[service.runtime]\nmkdir = [\"var\"]\n"), `service[svc].runtime.mkdir: "var" is not an absolute path`},
		{"runtime interface", service("[[service.runtime.interfaces]]\nname = \"eth1\"\nadd = \"vet\"\n"), `service[svc].runtime.interfaces[eth1].add: unknown interface type "vet" (only veth); did you mean "veth"?`},
		{"runtime peer", service("[[service.runtime.interfaces]]\nname = \"eth1\"\npeer = \"x\"\n"), `peer needs add = "veth"`},
		{"runtime create-in-ns", service("[[service.runtime.interfaces]]\nname = \"eth1\"\ncreate-in-ns = true\n"), `create-in-ns needs add = "veth"`},
		{"runtime bind-ns", service("[service.runtime.bind-ns]\nnet = \"netns\"\n"), `service[svc].runtime.bind-ns.net: "netns" is not an absolute path`},
		{"file ok", kernel + "[[file]]\npath = \"/etc/x\"\ncontents = \"\"\nmode = \"0600\"\n[[file]]\npath = \"/var/lib/x\"\ndirectory = true\n[[file]]\npath = \"/bin/sh\"\nsymlink = \"busybox\"\n[[file]]\npath = \"/etc/y\"\nsource = \"files/y\"\n", ""},
		{"file two kinds", kernel + "[[file]]\npath = \"/etc/x\"\ncontents = \"a\"\nsource = \"x\"\n", `file[/etc/x]: set exactly one of contents, source, symlink or directory (got contents and source)`},
		{"file no kind", kernel + "[[file]]\npath = \"/etc/x\"\n", `(got none)`},
		{"file relative path", kernel + "[[file]]\npath = \"etc/x\"\ncontents = \"\"\n", `file[etc/x].path: "etc/x" is not an absolute path`},
		{"file dotdot path", kernel + "[[file]]\npath = \"/etc/../x\"\ncontents = \"\"\n", `is not a clean path`},
		{"file no path", kernel + "[[file]]\ncontents = \"\"\n", `file[0].path: required`},
		{"file duplicate", kernel + "[[file]]\npath = \"/x\"\ncontents = \"\"\n[[file]]\npath = \"/x\"\ncontents = \"\"\n", `duplicate file "/x" (first at line 4)`},
		{"file source absolute", kernel + "[[file]]\npath = \"/x\"\nsource = \"/etc/shadow\"\n", `source must be relative to the file's directory`},
		{"file source escapes", kernel + "[[file]]\npath = \"/x\"\nsource = \"a/../../x\"\n", `"a/../../x" escapes the file's directory`},
		{"file mode", kernel + "[[file]]\npath = \"/x\"\ncontents = \"\"\nmode = \"0x644\"\n", `mode "0x644": want octal digits`},
		{"file symlink mode", kernel + "[[file]]\npath = \"/x\"\nsymlink = \"y\"\nmode = \"0644\"\n", `a symlink has no mode`},
		{"volume ok", kernel + "[[volume]]\nname = \"data\"\nsize = \"512MiB\"\n", ""},
		{"volume size", kernel + "[[volume]]\nname = \"data\"\nsize = \"0\"\n", `volume[data].size: size must be above zero`},
		{"volume duplicate", kernel + "[[volume]]\nname = \"d\"\nsize = \"1M\"\n[[volume]]\nname = \"d\"\nsize = \"1M\"\n", `duplicate volume name "d"`},
		{"volume no size", kernel + "[[volume]]\nname = \"data\"\n", `volume[data].size: required`},
		{"volume long name", kernel + "[[volume]]\nname = \"" + strings.Repeat("a", 37) + "\"\nsize = \"1M\"\n", `at most 36, a GPT partition name`},
		{"formats ok", kernel + "[output]\nformats = [\"kernel+initrd\", \"tar\", \"uki\", \"iso-efi\", \"iso-bios\", \"iso\", \"raw-efi\", \"raw-bios\", \"raw\", \"qcow2-efi\", \"qcow2-bios\", \"vhd\", \"dynamic-vhd\", \"vhdx\", \"vmdk\", \"ova\", \"gce\", \"aws\", \"rpi\"]\n", ""},
		{"format", kernel + "[output]\nformats = [\"qcow\"]\n", `output.formats: unknown output format "qcow"`},
		{"root", kernel + "[output]\nroot = \"squashf\"\n", `output.root: unknown root filesystem "squashf" (one of initrd, squashfs, erofs); did you mean "squashfs"?`},
		{"output size", kernel + "[output]\nsize = \"1.5G\"\n", `output.size: size "1.5G"`},
		{"initrd memory ok", kernel + "[output]\nmemory = \"512MiB\"\ninitrd-max-percent = 25\n", ""},
		{"memory", kernel + "[output]\nmemory = \"lots\"\n", `output.memory: size "lots"`},
		{"initrd percent", kernel + "[output]\ninitrd-max-percent = 150\n", `output.initrd-max-percent: 150 is not a percentage from 1 to 100`},
		{"dotted keys", "kernel.image = \"./k\"\noutput.root = \"erofs\"\n", ""},
		{"unknown table", kernel + "[outptu]\n", `outptu: unknown key; did you mean "output"?`},
		{"top-level key under a table", kernel + "arch = [\"amd64\"]\n", `kernel.arch: unknown key (top-level keys go before the first [table])`},
		{"datetime", kernel + "cmdline = 1979-05-27\n", `kernel.cmdline: expected string, got date-time`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("t.toml", []byte(c.doc))
			if c.want == "" {
				if err != nil {
					t.Fatalf("rejected:\n%v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want %q", c.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != 1 || !strings.Contains(lines[0], c.want) || !strings.HasPrefix(lines[0], "t.toml:") {
				t.Fatalf("got:\n%v\nwant one error containing %q", err, c.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "1024": 1024, "512MiB": 512 << 20, "1GiB": 1 << 30, "64M": 64 << 20, "1G": 1 << 30,
		"64m": 64 << 20, "10k": 10 << 10, "2T": 2 << 40, "3Ki": 3 << 10, "100B": 100, "8 EiB": -1,
	}
	for s, want := range good {
		got, err := ParseSize(s)
		if want < 0 {
			if err == nil {
				t.Errorf("%q accepted", s)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "M", "1.5G", "-1", "1GB", "12X", "9223372036854775807K", "8388608T"} {
		if _, err := ParseSize(s); err == nil {
			t.Errorf("ParseSize(%q) accepted", s)
		}
	}
}

func TestParseMode(t *testing.T) {
	good := map[string]uint32{"0644": 0o644, "755": 0o755, "0": 0}
	for s, want := range good {
		got, err := ParseMode(s)
		if err != nil || uint32(got) != want {
			t.Errorf("ParseMode(%q) = %v, %v", s, got, err)
		}
	}
	m, err := ParseMode("1777")
	if err != nil || m.Perm() != 0o777 || m&(1<<20) == 0 && !strings.Contains(m.String(), "t") {
		t.Errorf("sticky: %v %v", m, err)
	}
	if m, _ := ParseMode("04755"); !strings.HasPrefix(m.String(), "u") {
		t.Errorf("setuid: %v", m)
	}
	for _, s := range []string{"", "0o644", "0x1", "9", "17777", "abc", "-1"} {
		if _, err := ParseMode(s); err == nil {
			t.Errorf("ParseMode(%q) accepted", s)
		}
	}
}

func TestParseRlimit(t *testing.T) {
	r, err := ParseRlimit("nofile,1024,unlimited")
	if err != nil || r.Name != "RLIMIT_NOFILE" || r.Soft != 1024 || r.Hard != RlimitUnlimited || r.String() != "nofile,1024,unlimited" {
		t.Fatalf("%+v %v", r, err)
	}
	if r, err := ParseRlimit("RLIMIT_CORE,0,0"); err != nil || r.Name != "RLIMIT_CORE" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, short := range []string{"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
		"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"} {
		r, err := ParseRlimit(short + ",1,2")
		if err != nil {
			t.Errorf("%s: %v", short, err)
			continue
		}
		if _, ok := layout.RlimitResource(r.Name); !ok {
			t.Errorf("%s: init knows no %s", short, r.Name)
		}
	}
	// A dotless i upper-cases to I: not a name of the table all the same.
	if r, err := ParseRlimit("nof\u0131le,1,2"); err == nil {
		t.Errorf("nof\u0131le accepted as %s", r.Name)
	}
}

func TestParseCapability(t *testing.T) {
	for in, want := range map[string]string{"net_admin": "CAP_NET_ADMIN", "CAP_BPF": "CAP_BPF", "Cap_Checkpoint_Restore": "CAP_CHECKPOINT_RESTORE", "All": "all"} {
		if got, err := ParseCapability(in); err != nil || got.Name() != want || got.String() != in || got.IsAll() != (want == "all") {
			t.Errorf("%q: %q %v", in, got.Name(), err)
		}
	}
	// The spec knows every capability init can set, by the same table.
	for _, name := range layout.Capabilities() {
		if c, err := ParseCapability(strings.ToLower(strings.TrimPrefix(name, "CAP_"))); err != nil || c.Name() != name {
			t.Errorf("%s: %q %v", name, c.Name(), err)
		}
	}
	if _, err := ParseCapability("CAP_FOO"); err == nil {
		t.Error("CAP_FOO accepted")
	}
}
