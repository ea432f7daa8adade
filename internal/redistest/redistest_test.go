package redistest

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStartAnswersPingAndRestart(t *testing.T) {
	s := Start(t)
	require.NoError(t, ping(s.Addr))
	s.Restart()
	require.NoError(t, ping(s.Addr))
	s.Stop()
	require.Error(t, ping(s.Addr), "a stopped server must not answer")
	s.Stop() // safe twice
}
