package rotation

import "github.com/credgate/credgate/vaultstore"

var _ Store = (*vaultstore.Store)(nil)
