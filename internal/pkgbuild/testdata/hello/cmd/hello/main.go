// Command hello is the Go program of pkgbuild's test package.
package main

import "fmt"

func main() { fmt.Println("hello from keel") }
