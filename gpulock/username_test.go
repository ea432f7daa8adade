package gpulock

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPasswdName(t *testing.T) {
	passwd := "# a comment\n+nis:x:7::\nroot:x:0:0:root:/root:/bin/sh\n" +
		"bob:x:1000:1000:Bob,,,:/home/bob:/bin/bash\nbroken:x\n:x:5:5::/:/bin/sh\n"
	for _, c := range []struct {
		uid  int
		name string
		ok   bool
	}{{0, "root", true}, {1000, "bob", true}, {100, "", false}, {7, "", false}, {5, "", false}} {
		name, ok := passwdName(strings.NewReader(passwd), c.uid)
		assert.Equal(t, c.ok, ok, "uid %d", c.uid)
		assert.Equal(t, c.name, name, "uid %d", c.uid)
	}
}

// The names agree with os/user's for every user of this system's
// /etc/passwd, and for this process's user.
func TestLookupUserNameAgreesWithOSUser(t *testing.T) {
	b, err := os.ReadFile(passwdFile)
	require.NoError(t, err)
	uids := []int{os.Getuid()}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Split(line, ":"); len(f) > 2 {
			if uid, err := strconv.Atoi(f[2]); err == nil {
				uids = append(uids, uid)
			}
		}
	}
	require.Greater(t, len(uids), 1)
	for _, uid := range uids {
		want := ""
		if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
			want = u.Username
		}
		assert.Equal(t, want, lookupUserName(uid), "uid %d", uid)
	}
	assert.Equal(t, "", lookupUserName(1<<30+12345), "a uid no name service knows")
}
