//go:build unix

package gpulock

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A ticket's name ends in its client's tag, which lastPlaceOf reads
// instead of opening other clients' tickets.
func TestTicketNameTagsItsClient(t *testing.T) {
	l := newTestLock(t, t.TempDir(), 0)
	tk, err := createTicket(l.queueDir(), Waiter{PID: os.Getpid(), Client: "alice"}, time.Now())
	require.NoError(t, err)
	defer tk.remove()
	require.True(t, isTicketName(tk.name))
	tag, ok := nameClientTag(tk.name)
	require.True(t, ok, tk.name)
	assert.Equal(t, clientTag("alice"), tag)
	assert.NotEqual(t, clientTag("bob"), tag)

	_, ok = nameClientTag(fmt.Sprintf("%0*d-%d-%08x", ticketTimeDigits, 1, 2, 3))
	assert.False(t, ok, "an untagged name, as older versions made")

	key := ticketKey(tk.name)
	got, ok := lastPlaceOf(l.queueDir(), "alice")
	require.True(t, ok)
	assert.True(t, got.Equal(key))
	_, ok = lastPlaceOf(l.queueDir(), "bob")
	assert.False(t, ok)
}
