package main

import (
	"context"

	"github.com/gpulock/gpulock/gpulock"
	"github.com/gpulock/gpulock/internal/execcmd"
	"github.com/gpulock/gpulock/internal/shim"
)

// waitDeadHolder is exec's wait for the backend of a shim that died
// holding the lock (execcmd.DeadHolderWait): shim.WaitDeadHolder, which the
// shims use too.
func waitDeadHolder(ctx context.Context, h *gpulock.Handle, o execcmd.DeadHolderOptions) error {
	_, err := shim.WaitDeadHolder(ctx, h, shim.DeadHolderOptions{Logger: o.Logger, Once: o.Once})
	return err // shim.ErrDeadHolderBusy is execcmd.ErrDeadHolderBusy: both are deadwait's
}
