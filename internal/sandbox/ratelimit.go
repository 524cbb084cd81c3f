package sandbox

import "time"

// rateWindows counts one access token's requests in fixed windows aligned
// to UTC minute and day boundaries (spec §11).
type rateWindows struct {
	Minute      int64 `json:"minute"` // minute index since the epoch
	MinuteCount int   `json:"minute_count"`
	Day         int64 `json:"day"` // day index since the epoch (00:00 UTC)
	DayCount    int   `json:"day_count"`
	Other       int64 `json:"other_minute"`
	OtherCount  int   `json:"other_minute_count"`
}

// rateVerdict is the outcome of a rate-limit check.
type rateVerdict struct {
	limited    bool
	day        bool // the daily limit, answered with the DAY text
	retryAfter int  // seconds to the end of the exhausted window
}

// take counts one request for tok if it is within the limits. conv selects
// the conversionEvents limits, else the limit of the other endpoints. A
// refused request does not consume quota. The caller holds Server.mu.
func (st *state) take(cfg Config, tok string, conv bool, now time.Time) rateVerdict {
	rw := st.rate[tok]
	if rw == nil {
		rw = &rateWindows{}
		st.rate[tok] = rw
	}
	ms := now.UnixMilli()
	minute := floorDiv(ms, 60_000)
	day := floorDiv(ms, 86_400_000)
	untilMinute := secondsCeil((minute+1)*60_000 - ms)
	untilDay := secondsCeil((day+1)*86_400_000 - ms)
	if !conv {
		if rw.Other != minute {
			rw.Other, rw.OtherCount = minute, 0
		}
		if cfg.OtherRatePerMinute >= 0 && rw.OtherCount >= cfg.OtherRatePerMinute {
			return rateVerdict{limited: true, retryAfter: untilMinute}
		}
		rw.OtherCount++
		return rateVerdict{}
	}
	if rw.Minute != minute {
		rw.Minute, rw.MinuteCount = minute, 0
	}
	if rw.Day != day {
		rw.Day, rw.DayCount = day, 0
	}
	if cfg.RatePerDay >= 0 && rw.DayCount >= cfg.RatePerDay {
		return rateVerdict{limited: true, day: true, retryAfter: untilDay}
	}
	if cfg.RatePerMinute >= 0 && rw.MinuteCount >= cfg.RatePerMinute {
		return rateVerdict{limited: true, retryAfter: untilMinute}
	}
	rw.MinuteCount++
	rw.DayCount++
	return rateVerdict{}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

func secondsCeil(ms int64) int { return int((ms + 999) / 1000) }
