package prune

import (
	"fmt"
	"io"

	units "github.com/docker/go-units"
)

// binaryUnits are go-units' binary abbreviations, which the library does not export.
var binaryUnits = []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"}

// FormatSize formats a byte count the way the product's documentation shows it: "2.835 GiB".
// (go-units' BytesSize writes "2.835GiB"; administrators' scripts match the documented form.)
func FormatSize(bytes int64) string {
	return units.CustomSize("%.4g %s", float64(bytes), 1024.0, binaryUnits)
}

// WriteSummary writes the summary lines administrators know, then the counts of the other
// objects, one "<verb> N <kind>" line each so that scripts can parse them all alike.
func WriteSummary(w io.Writer, s Summary, dryRun bool) {
	verb, freed := "Deleted", "Freed up"
	if dryRun {
		verb, freed = "Would delete", "Would free up"
	}
	fmt.Fprintf(w, "%s %d blobs\n", verb, s.Blobs)
	fmt.Fprintf(w, "%s %s of disk space\n", freed, FormatSize(s.BlobBytes))
	if dryRun {
		fmt.Fprintln(w, "Use -prune=delete to actually delete the data")
	}
	fmt.Fprintf(w, "%s %d repositories\n", verb, s.Repositories)
	fmt.Fprintf(w, "%s %d manifest links\n", verb, s.ManifestLinks)
	fmt.Fprintf(w, "%s %d tags\n", verb, s.Tags)
	fmt.Fprintf(w, "%s %d tag index entries\n", verb, s.TagIndexEntries)
	fmt.Fprintf(w, "%s %d layer links\n", verb, s.LayerLinks)
	fmt.Fprintf(w, "%s %d uploads (%s)\n", verb, s.Uploads, FormatSize(s.UploadBytes))
}
