// Command gobin is a tiny Go program with one dependency, built by the
// tests to check GoModules reads dependencies from build info.
package main

import (
	"fmt"

	"github.com/google/uuid"
)

func main() { fmt.Println(uuid.NewSHA1(uuid.NameSpaceURL, []byte("keel"))) }
