package linkedin

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Sentinels for the REST calls other than conversion events (rules,
// campaigns, token check). *APIError matches them with errors.Is.
var (
	// ErrRateLimited matches a 429; the *APIError's RetryAfter is the
	// minimum wait (the Retry-After header, or the time to the next 00:00
	// UTC for a daily limit, §11).
	ErrRateLimited = errors.New("linkedin rate limit reached")
	// ErrNotFound matches a 404 (unknown rule, campaign or account).
	ErrNotFound = errors.New("linkedin resource not found")
	// ErrForbidden matches a 403: the token lacks the scope or the member a
	// qualifying role on the account (§6.1, §7).
	ErrForbidden = errors.New("linkedin permission denied")
	// ErrVersionInactive matches a 426 (or 400 VERSION_MISSING): the pinned
	// LinkedIn-Version is not active (§4.1).
	ErrVersionInactive = errors.New("linkedin api version not active")
)

// APIError is a failed REST call: LinkedIn answered with a non-2xx status,
// or did not answer (Status 0 and Err set), or the client's auth recovery
// failed (Err is the *RefreshError or ErrNoRefreshToken). The embedded
// Outcome is Classify's reading of the answer: Class says whether a retry
// can help (ClassRetry), Status, Code, ServiceErrorCode and Message come
// from LinkedIn's error body, RequestID is the X-LI-UUID to quote to
// LinkedIn support, RetryAfter the minimum wait.
type APIError struct {
	// Op names the operation: "create conversion rule".
	Op string
	Outcome
	// Err is the underlying error when the client, not LinkedIn, failed.
	Err error
}

func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString(e.Op)
	b.WriteString(": ")
	if e.Status == 0 {
		if e.Err != nil {
			b.WriteString(e.Err.Error())
		} else {
			b.WriteString("no answer")
		}
		return b.String()
	}
	fmt.Fprintf(&b, "linkedin status %d", e.Status)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + strings.TrimRight(e.Message, "\n"))
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " [x-li-uuid %s]", e.RequestID)
	}
	if e.Err != nil {
		b.WriteString(": " + e.Err.Error())
	}
	return b.String()
}

// Is matches ErrRateLimited (429), ErrNotFound (404), ErrForbidden (403),
// ErrVersionInactive and ErrReauthRequired (every auth class: the client
// already refreshed or retried what §17.3 allows).
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrRateLimited:
		return e.Status == http.StatusTooManyRequests
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrForbidden:
		return e.Class == ClassForbidden
	case ErrVersionInactive:
		return e.Class == ClassVersion
	case ErrReauthRequired:
		return e.Class == ClassAuthExpired || e.Class == ClassAuthRevoked || e.Class == ClassAuthMissing
	}
	return false
}

// Unwrap returns Err.
func (e *APIError) Unwrap() error { return e.Err }

// Retryable reports whether the same call may succeed later (after
// RetryAfter at least): transient statuses, 429, no answer.
func (e *APIError) Retryable() bool { return e.Class == ClassRetry }

// reason is the text a hook message quotes: LinkedIn's message when it
// gave one, else the error.
func (e *APIError) reason() string {
	if m := strings.TrimRight(e.Message, "\n"); m != "" {
		return m
	}
	if e.Status != 0 {
		return http.StatusText(e.Status)
	}
	if e.Err != nil {
		return e.Err.Error()
	}
	return "no answer"
}

// Error codes of the onMappingSave hook (§20.3), as Segment reports them.
const (
	CodeMissingRequiredField      = "MISSING_REQUIRED_FIELD"
	CodeRuleCreationFailure       = "CONVERSION_RULE_CREATION_FAILURE"
	CodeRuleUpdateFailure         = "CONVERSION_RULE_UPDATE_FAILURE"
	CodeRuleVerificationFailure   = "CONVERSION_RULE_VERIFICATION_FAILURE"
	CodeAssociateCampaignsFailure = "ASSOCIATE_CAMPAIGN_TO_CONVERSION_ERROR"
	hookCreatePrefix              = "Failed to create conversion rule: "
	hookUpdatePrefix              = "Failed to update conversion rule: "
	hookVerifyPrefix              = "Failed to verify conversion rule: "
	hookAssociatePrefix           = "Failed to associate campaigns to conversion rule, please try again: "
	hookMissingFieldsPrefix       = "Missing required fields for creating a new conversion rule: "
)

// HookError is a failure of EnsureRule or AssociateCampaigns, the
// onMappingSave hook of §20.1, with the exact message and code of §20.3
// ("Failed to create conversion rule: …", CONVERSION_RULE_CREATION_FAILURE).
// Those user-facing messages are Segment's wording, hence the capital and
// the "Failed to" that capstan's own errors avoid. Unwrap gives the cause,
// usually an *APIError, so errors.Is(err, ErrRateLimited) and friends work
// through it.
type HookError struct {
	// Code is one of the Code* constants.
	Code string
	// Message is the exact §20.3 text.
	Message string
	// Status is LinkedIn's HTTP status when LinkedIn refused; 400 for
	// CodeMissingRequiredField; 0 when LinkedIn was not reached.
	Status int
	// Err is the cause.
	Err error
}

func (e *HookError) Error() string { return e.Message }

// Unwrap returns the cause.
func (e *HookError) Unwrap() error { return e.Err }

// hookError wraps err, the failure of one hook step, with prefix and code.
func hookError(code, prefix string, err error) *HookError {
	he := &HookError{Code: code, Err: err}
	var ae *APIError
	var asc *AssociationError
	switch {
	case errors.As(err, &asc):
		he.Message = prefix + asc.reason()
		he.Status = asc.status()
	case errors.As(err, &ae):
		he.Message = prefix + ae.reason()
		he.Status = ae.Status
	default:
		he.Message = prefix + err.Error()
	}
	return he
}
