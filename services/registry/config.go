package registry

import "flag"

// Config is the registry's configuration.
type Config struct {
	// RequireApproval keeps submitted client systems pending until an operator approves them (production);
	// without it a submitted system is approved at once.
	RequireApproval bool
}

// RegisterFlags registers the registry flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.RequireApproval, "require-approval", false, "submitted client systems wait for an operator's approval (production)")
}
