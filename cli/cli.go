// Package cli is vpcroute's command line: `vpcroute serve` is the plugin itself (what
// Docker and systemd run), every other command is a tool for operators that talks to
// the running plugin through its socket and never binds one, creates a file or
// changes anything without being asked to (`--apply`).
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Command is one subcommand.
type Command struct {
	Name  string
	Usage string // arguments after the name, e.g. "[--json]"
	Short string // one line for the command list
	Long  string // what --help says beyond Short
	// Flags declares the command's flags on fs.
	Flags func(fs *flag.FlagSet)
	// Run does the work; args are what is left after the flags.
	Run func(env *Env, args []string) error
}

// Env is what commands read and write.
type Env struct {
	Stdout, Stderr io.Writer
	Version        string
}

// errUsage says the command line was wrong; the usage was printed already.
var errUsage = errors.New("usage")

// Main runs the command line args (without the program name) and returns the exit
// status. No arguments means serve, as Docker and older installs start the plugin.
func Main(args []string, env *Env, commands []Command) int {
	byName := map[string]Command{}
	for _, c := range commands {
		byName[c.Name] = c
	}
	name := "serve"
	if len(args) > 0 {
		name, args = args[0], args[1:]
	}
	switch name {
	case "-h", "--help", "help":
		if len(args) > 0 {
			if c, ok := byName[args[0]]; ok {
				commandHelp(env.Stdout, c)
				return 0
			}
		}
		usage(env.Stdout, commands)
		return 0
	case "--version", "-version":
		name = "version"
	}
	c, ok := byName[name]
	if !ok {
		fmt.Fprintf(env.Stderr, "vpcroute: unknown command %q\n\n", name)
		usage(env.Stderr, commands)
		return 2
	}
	fs := flag.NewFlagSet("vpcroute "+c.Name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.Flags != nil {
		c.Flags(fs)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			commandHelp(env.Stdout, c, fs)
			return 0
		}
		fmt.Fprintf(env.Stderr, "vpcroute %s: %v\n\n", c.Name, err)
		commandHelp(env.Stderr, c, fs)
		return 2
	}
	if err := c.Run(env, fs.Args()); err != nil {
		if errors.Is(err, errFound) {
			return 1
		}
		if errors.Is(err, errUsage) {
			commandHelp(env.Stderr, c, fs)
			return 2
		}
		fmt.Fprintf(env.Stderr, "vpcroute %s: %v\n", c.Name, err)
		return 1
	}
	return 0
}

func usage(w io.Writer, commands []Command) {
	fmt.Fprint(w, `vpcroute: Docker network and IPAM plugin for container subnets routed by the
Huawei Cloud VPC route table.

Usage: vpcroute <command> [flags]

Commands:
`)
	sorted := append([]Command(nil), commands...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, c := range sorted {
		fmt.Fprintf(w, "  %-10s %s\n", c.Name, c.Short)
	}
	fmt.Fprint(w, `
Without a command, vpcroute serves (as Docker and systemd start it).
"vpcroute <command> --help" says more about a command.
`)
}

func commandHelp(w io.Writer, c Command, fs ...*flag.FlagSet) {
	fmt.Fprintf(w, "Usage: vpcroute %s %s\n\n%s\n", c.Name, c.Usage, c.Short)
	if c.Long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.Long))
	}
	var set *flag.FlagSet
	if len(fs) > 0 {
		set = fs[0]
	} else if c.Flags != nil {
		set = flag.NewFlagSet(c.Name, flag.ContinueOnError)
		c.Flags(set)
	}
	if set != nil {
		var b strings.Builder
		set.SetOutput(&b)
		set.PrintDefaults()
		if b.Len() > 0 {
			fmt.Fprintf(w, "\nFlags:\n%s", b.String())
		}
	}
}
