package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newInspectCmd is a placeholder until issue 7 lands; its owner replaces
// this file.
func newInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "inspect IMAGE",
		Short:              "Show what a built image holds (not implemented yet)",
		DisableFlagParsing: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("keel inspect: not implemented yet (see issue 7)")
		},
	}
}
