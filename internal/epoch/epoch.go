// Package epoch is the time keel stamps on everything it writes (file
// times, image creation times, volume dates), so that outputs do not
// depend on when they were built.
package epoch

import (
	"strconv"
	"time"
)

// Default is the epoch when SOURCE_DATE_EPOCH is not set: 2024-01-01 UTC.
func Default() time.Time { return time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC) }

// FromSourceDateEpoch is the time a SOURCE_DATE_EPOCH value names (seconds
// since 1970, UTC), or Default when the value is empty or not a number.
func FromSourceDateEpoch(v string) time.Time {
	if v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return time.Unix(n, 0).UTC()
		}
	}
	return Default()
}
