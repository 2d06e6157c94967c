package layout

import "testing"

func TestOrderedBundleNames(t *testing.T) {
	for i, name := range []string{"sysctl", "dhcpcd", "7zip", "a-b"} {
		dir := OrderedBundle(i, name)
		if got := BundleName(dir); got != name {
			t.Errorf("BundleName(%q) = %q, want %q", dir, got, name)
		}
	}
	if got := OrderedBundle(12, "x"); got != "012-x" {
		t.Errorf("OrderedBundle(12, x) = %q: init runs bundles in name order, so the index needs its zeros", got)
	}
	// A service's directory is its name, whatever it looks like.
	for _, base := range []string{"getty", "123", "12-", "-x", "0x-y"} {
		if got := BundleName(base); got != base {
			t.Errorf("BundleName(%q) = %q", base, got)
		}
	}
}

func TestSysctlNamespace(t *testing.T) {
	for name, want := range map[string]string{
		"net.ipv4.ip_forward": SysctlNet, "kernel.shmmax": SysctlIPC, "kernel.msgmnb": SysctlIPC,
		"kernel.sem": SysctlIPC, "fs.mqueue.msg_max": SysctlIPC, "kernel.hostname": SysctlUTS,
		"kernel.domainname": SysctlUTS, "kernel.core_pattern": "", "vm.swappiness": "", "netx.y": "",
	} {
		if got := SysctlNamespace(name); got != want {
			t.Errorf("SysctlNamespace(%q) = %q, want %q", name, got, want)
		}
	}
}
