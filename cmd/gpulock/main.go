// Command gpulock runs commands while holding a GPU lock and shows who holds
// which GPU. See doc.go for the commands and the exit codes.
package main

import "os"

func main() {
	os.Exit(NewApp(os.Stdin, os.Stdout, os.Stderr).Run(os.Args))
}
