package execcmd

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseDuration(t *testing.T) {
	d, err := parseDuration("90s")
	require.NoError(t, err)
	assert.Equal(t, 90*time.Second, d)
	d, err = parseDuration("0")
	require.NoError(t, err)
	assert.Zero(t, d)
	_, err = parseDuration("5")
	assert.ErrorContains(t, err, "needs a unit, e.g. 5s")
	_, err = parseDuration("-1s")
	assert.ErrorContains(t, err, "negative")
	_, err = parseDuration("soon")
	assert.ErrorContains(t, err, "not a duration")
}
