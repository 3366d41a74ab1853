package ordinary

// Reason is the rule that settled the fate of a history item or an Image, said once: the log,
// the report and -prune-explain print it.
type Reason uint8
