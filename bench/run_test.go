package bench

import (
	"strings"
	"testing"
)

func TestParseWouldDelete(t *testing.T) {
	out := "Would delete 1200 blobs\nWould free up 2.835 GiB of disk space\nUse -prune=delete to actually delete the data\n"
	if n, err := parseWouldDelete(strings.NewReader(out)); err != nil || n != 1200 {
		t.Errorf("parseWouldDelete = %d, %v; want 1200", n, err)
	}
	// A line that only ends like the summary is not the summary.
	if _, err := parseWouldDelete(strings.NewReader("Would delete 3 blobs later\nDeleted 3 blobs\n")); err == nil {
		t.Error("parseWouldDelete found a count in output without the summary line")
	}
}
