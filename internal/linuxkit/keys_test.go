package linuxkit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// schemaKeys are the keys of LinuxKit's configuration (its docs/yaml.md
// and the JSON schema of src/cmd/linuxkit/moby), named as docs/linuxkit.md
// names them: a section's keys under it (kernel.image, files[].mode), a
// container's keys by themselves (binds, resources.cpu.quota).
var schemaKeys = []string{
	"kernel", "kernel.image", "kernel.cmdline", "kernel.binary", "kernel.tar", "kernel.ucode",
	"init", "onboot", "onshutdown", "services",
	"trust", "trust.image", "trust.org",
	"files", "files[].path", "files[].directory", "files[].symlink", "files[].contents", "files[].source",
	"files[].metadata", "files[].optional", "files[].mode", "files[].uid", "files[].gid",
	"volumes", "volumes[].name", "volumes[].image", "volumes[].readonly", "volumes[].format", "volumes[].platforms",

	"name", "image", "capabilities", "capabilities.add", "ambient",
	"mounts", "mounts[].destination", "mounts[].type", "mounts[].source", "mounts[].options",
	"mounts[].uidmappings", "mounts[].gidmappings",
	"binds", "binds.add",
	"devices", "devices[].path", "devices[].type", "devices[].major", "devices[].minor", "devices[].mode",
	"tmpfs", "command", "env", "cwd", "net", "pid", "ipc", "uts", "userns", "readonly",
	"maskedPaths", "readonlyPaths", "uid", "gid", "additionalGids", "noNewPrivileges", "hostname",
	"oomScoreAdj", "rootfsPropagation", "cgroupsPath",
	"resources", "resources.devices", "resources.memory", "resources.memory.limit",
	"resources.memory.reservation", "resources.memory.swap", "resources.memory.kernel",
	"resources.memory.kernelTCP", "resources.memory.swappiness", "resources.memory.disableOOMKiller",
	"resources.cpu", "resources.cpu.shares", "resources.cpu.quota", "resources.cpu.period",
	"resources.cpu.realtimeRuntime", "resources.cpu.realtimePeriod", "resources.cpu.cpus", "resources.cpu.mems",
	"resources.pids", "resources.pids.limit", "resources.blockio", "resources.hugepageLimits", "resources.network",
	"sysctl", "rlimits", "uidMappings", "gidMappings", "annotations",
	"runtime", "runtime.cgroups", "runtime.mounts", "runtime.mkdir",
	"runtime.interfaces", "runtime.interfaces[].name", "runtime.interfaces[].add", "runtime.interfaces[].peer",
	"runtime.interfaces[].createInRoot",
	"runtime.bindNS", "runtime.bindNS.cgroup", "runtime.bindNS.ipc", "runtime.bindNS.mnt", "runtime.bindNS.net",
	"runtime.bindNS.pid", "runtime.bindNS.user", "runtime.bindNS.uts",
	"runtime.namespace",
}

// TestTestdataUsesEveryKey checks that the golden cases write every key
// of LinuxKit's schema, so each has its expected translation or report.
func TestTestdataUsesEveryKey(t *testing.T) {
	files, err := filepath.Glob("testdata/*/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
			continue // the syntax error case
		}
		top := doc.Content[0]
		for i := 0; i+1 < len(top.Content); i += 2 {
			k, v := top.Content[i].Value, top.Content[i+1]
			used[k] = true
			switch k {
			case "onboot", "onshutdown", "services":
				for _, item := range v.Content {
					keyPaths(item, "", used)
				}
			case "files", "volumes":
				for _, item := range v.Content {
					keyPaths(item, k+"[]", used)
				}
			case "kernel", "trust":
				keyPaths(v, k, used)
			}
		}
	}
	for _, k := range schemaKeys {
		if !used[k] {
			t.Errorf("no testdata YAML uses %s", k)
		}
	}
}

// keyPaths records the keys of a mapping, and of the mappings within,
// except the user's own keys of sysctl and annotations.
func keyPaths(n *yaml.Node, prefix string, used map[string]bool) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		p := join(prefix, k)
		used[p] = true
		if k == "sysctl" || k == "annotations" {
			continue
		}
		switch v.Kind {
		case yaml.MappingNode:
			keyPaths(v, p, used)
		case yaml.SequenceNode:
			for _, item := range v.Content {
				keyPaths(item, p+"[]", used)
			}
		}
	}
}

// TestDocsMapEveryKey checks that docs/linuxkit.md's table has a row for
// every key of LinuxKit's schema.
func TestDocsMapEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../docs/linuxkit.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cell, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, k := range strings.Split(cell, ", ") {
			rows[strings.Trim(k, "`")] = true
		}
	}
	for _, k := range schemaKeys {
		if !rows[k] {
			t.Errorf("docs/linuxkit.md has no row for `%s`", k)
		}
	}
}
