// Command kubecheck builds Kustomize directories and checks what they produce before a cluster sees it:
// every object must decode strictly into its Kubernetes API type (an unknown or misspelt field, or a
// value of the wrong type, is an error), and the objects must fit together: selectors select pods,
// probes and Services name ports the containers declare, and referenced ConfigMaps, Secrets and their
// keys exist (or are named with -external as provided at deploy time). `make k8s-check` runs it on
// deploy/k8s.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

func main() {
	external := flag.String("external", "", "comma-separated Kind/name the build may reference without containing (e.g. Secret/hnsec-secrets)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: kubecheck [-external Kind/name,...] DIR...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() == 0 {
		flag.Usage()
		os.Exit(2)
	}
	failed := false
	for _, dir := range flag.Args() {
		problems, n, err := checkDir(dir, splitList(*external))
		switch {
		case err != nil:
			fmt.Fprintf(os.Stderr, "%s: %v\n", dir, err)
			failed = true
		case len(problems) > 0:
			for _, p := range problems {
				fmt.Fprintf(os.Stderr, "%s: %s\n", dir, p)
			}
			failed = true
		default:
			fmt.Printf("%s: %d objects valid\n", dir, n)
		}
	}
	if failed {
		os.Exit(1)
	}
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
