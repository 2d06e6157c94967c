package spec

import (
	"reflect"
	"strings"
	"testing"
)

func TestLoadPackageAccounts(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "package.toml", `name = "web"

[[accounts.group]]
name = "www-data"
gid = 33

[[accounts.user]]
name = "www-data"
uid = 33
home = "/var/www"

[[accounts.user]]
name = "_app"
uid = 4294967294
gid = 0
groups = ["www-data", "adm"]
gecos = "App user, room 1"
shell = "/bin/sh"
`)
	pk, err := LoadPackage(dir)
	if err != nil {
		t.Fatal(err)
	}
	zero := uint32(0)
	want := &Accounts{
		Groups: []Group{{Name: "www-data", GID: 33}},
		Users: []User{
			{Name: "www-data", UID: 33, Home: "/var/www"},
			{Name: "_app", UID: 4294967294, GID: &zero, Groups: []string{"www-data", "adm"}, Gecos: "App user, room 1", Shell: "/bin/sh"},
		},
	}
	if !reflect.DeepEqual(pk.Accounts, want) {
		t.Errorf("accounts = %+v, want %+v", pk.Accounts, want)
	}
}

// TestLoadPackageAccountsErrors checks that every mistake in [accounts]
// is reported in one run, each at its FILE:LINE:COL.
func TestLoadPackageAccountsErrors(t *testing.T) {
	dir := t.TempDir()
	f := write(t, dir, "package.toml", `name = "p"

[[accounts.group]]
name = "web"
gid = 33

[[accounts.group]]
name = "web"
gid = 33

[[accounts.group]]
name = "9lives"

[[accounts.user]]
name = "web"
uid = 4294967296

[[accounts.user]]
name = "a-very-long-user-name-for-a-system-account"
uid = 4294967295
gid = -1
groups = ["web", "web", "bad name"]
gecos = "a:b"
home = "var/www"
shell = "/bin/../sh"

[[accounts.user]]
uid = 7
home = "/x:y"

[[accounts.user]]
name = "web"
uid = 7
nmae = "x"
`)
	_, err := LoadPackage(dir)
	got := errorLines(t, err)
	want := []string{
		f + `:8:8: accounts.group[web].name: duplicate group name "web" (first at line 4)`,
		f + `:9:7: accounts.group[web].gid: duplicate gid 33 (first at line 5)`,
		f + `:11:12: accounts.group[9lives].gid: required`,
		f + `:12:8: accounts.group[9lives].name: "9lives" is not a valid user or group name (letters, digits, '_' and '-', starting with a letter or '_')`,
		f + `:16:7: accounts.user[web].uid: integer out of range (0 to 4294967295)`,
		f + `:19:8: accounts.user[a-very-long-user-name-for-a-system-account].name: "a-very-long-user-name-for-a-syst"… is too long for a user or group name (42 characters; at most 31)`,
		f + `:20:7: accounts.user[a-very-long-user-name-for-a-system-account].uid: 4294967295 is (uid_t)-1, which means "no id" to the kernel`,
		f + `:21:7: accounts.user[a-very-long-user-name-for-a-system-account].gid: integer out of range (0 to 4294967295)`,
		f + `:22:18: accounts.user[a-very-long-user-name-for-a-system-account].groups: group "web" is listed twice`,
		f + `:22:25: accounts.user[a-very-long-user-name-for-a-system-account].groups: "bad name" is not a valid user or group name (letters, digits, '_' and '-', starting with a letter or '_')`,
		f + `:23:9: accounts.user[a-very-long-user-name-for-a-system-account].gecos: "a:b" holds ":", which /etc/passwd cannot`,
		f + `:24:8: accounts.user[a-very-long-user-name-for-a-system-account].home: "var/www" is not an absolute path`,
		f + `:25:9: accounts.user[a-very-long-user-name-for-a-system-account].shell: "/bin/../sh" is not a clean path (want "/sh", without ..)`,
		f + `:27:12: accounts.user[2].name: required`,
		f + `:29:8: accounts.user[2].home: "/x:y" holds ':' or a newline, which /etc/passwd cannot`,
		f + `:32:8: accounts.user[web].name: duplicate user name "web" (first at line 15)`,
		f + `:33:7: accounts.user[web].uid: duplicate uid 7 (first at line 28)`,
		f + `:34:1: accounts.user[web].nmae: unknown key; did you mean "name"?`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestCheckAccountName(t *testing.T) {
	for _, ok := range []string{"root", "www-data", "_apt", "systemd-network", "Debian-exim", "a", strings.Repeat("x", 31)} {
		if err := CheckAccountName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "0day", "a b", "a:b", "a/b", "a.b", "ünï", strings.Repeat("x", 32), "x\n"} {
		if err := CheckAccountName(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
