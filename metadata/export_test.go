package metadata

import "context"

// InstanceID is the random id s puts in the keys it makes unique.
func InstanceID(s *Store) string { return s.id }

// FoldUsage runs one round of usage folding: of the volumes s wrote
// deltas for (its own deltas only), or (all) of every volume.
func FoldUsage(ctx context.Context, s *Store, all bool) error { return s.foldUsage(ctx, all) }
