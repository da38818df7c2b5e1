package cli

import "fmt"

// Tools are the operators' commands: all but serve.
func Tools() []Command {
	return []Command{versionCommand(), statusCommand(), doctorCommand(), gcCommand(), uninstallCommand()}
}

func versionCommand() Command {
	return Command{
		Name:  "version",
		Usage: "",
		Short: "print vpcroute's version",
		Run: func(env *Env, args []string) error {
			if len(args) > 0 {
				return errUsage
			}
			fmt.Fprintln(env.Stdout, "vpcroute", env.Version)
			return nil
		},
	}
}
