package mapping

import (
	"strings"
	"testing"
)

func TestTriggerExplain(t *testing.T) {
	events := []string{trackSignUp, pageHome, identifyUser}
	tests := []struct {
		trigger string
		event   int
		want    bool
		why     string
	}{
		{`type = "track" and event = "Sign Up"`, 0, true, `matched: type = "track" and event = "Sign Up"`},
		{`type = "track" and event = "Purchase"`, 0, false, `event = "Purchase" is false: event is "Sign Up"`},
		{`type = "track"`, 1, false, `type = "track" is false: type is "page"`},
		{`properties.revenue > 10`, 0, false, `properties.revenue > 10 is false: properties.revenue is absent`},
		{`userId = "u1"`, 0, false, `userId = "u1" is false: userId is null`},
		{`event = "A" or type = "page"`, 2, false, `no alternative holds: event = "A" is false: event is absent; type = "page" is false: type is "identify"`},
		{`contains(context.page.url, "pricing")`, 0, false, `contains(context.page.url, "pricing") is false: context.page.url is "https://www.example.com/signup?li_fat_id=123456"`},
		{`type = "identify" and traits.company = "x"`, 2, false, `traits.company = "x" is false: traits.company is {"name":"Acme Inc"}`},
	}
	for _, tt := range tests {
		ev := mustParse(t, events[tt.event])
		trig := MustParseTrigger(tt.trigger)
		ok, why := trig.Explain(ev)
		if ok != tt.want || why != tt.why {
			t.Errorf("%s on event %d: got %v %q, want %v %q", tt.trigger, tt.event, ok, why, tt.want, tt.why)
		}
		if ok != trig.Match(ev) {
			t.Errorf("%s: Explain says %v, Match %v", tt.trigger, ok, !ok)
		}
	}
	// A long value is cut, on a character boundary.
	ev := mustParse(t, `{"type":"track","event":"`+strings.Repeat("é", 100)+`"}`)
	_, why := MustParseTrigger(`event = "x"`).Explain(ev)
	if !strings.HasSuffix(why, "…") || len(why) > 140 {
		t.Errorf("long value: %q", why)
	}
}
