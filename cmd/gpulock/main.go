// Command gpulock runs commands while holding a GPU lock and shows who holds
// which GPU. See doc.go for the commands and the exit codes.
package main

import "os"

func main() {
	if len(os.Args) > 1 && os.Args[1] == guardArg {
		os.Exit(runGuard(os.Args[2:])) // see guard.go
	}
	app := NewApp(os.Stdin, os.Stdout, os.Stderr)
	app.exitAfterRun = true
	os.Exit(app.Run(os.Args))
}
