package main

import (
	"github.com/gpulock/gpulock/internal/execcli"
	"github.com/gpulock/gpulock/internal/execcmd"
)

// The exit codes, errors, flags and texts that gpulock's commands share
// with exec, which lives in internal/execcmd (so that the small
// gpulock-exec binary is built from the same code) and, for urfave/cli,
// internal/execcli, under the names the commands of this package use.

const (
	exitOK          = execcmd.ExitOK
	exitUsage       = execcmd.ExitUsage
	exitUnavailable = execcmd.ExitUnavailable
	exitSoftware    = execcmd.ExitSoftware
	exitIOErr       = execcmd.ExitIOErr
	exitTempFail    = execcmd.ExitTempFail
	exitSignalBase  = execcmd.ExitSignalBase
	exitNoInput     = execcmd.ExitNoInput
	exitOSErr       = execcmd.ExitOSErr
	exitNoPerm      = execcmd.ExitNoPerm
	exitCannotExec  = execcmd.ExitCannotExec
	exitNotFound    = execcmd.ExitNotFound

	flagGPU   = execcmd.FlagGPU
	flagQuiet = execcmd.FlagQuiet
)

type exitError = execcmd.ExitError

var (
	exitf           = execcmd.Exitf
	usageError      = execcmd.UsageError
	lockError       = execcmd.LockError
	envVar          = execcmd.EnvVar
	lockDir         = execcli.LockDir
	givenLockDir    = execcli.GivenLockDir
	durationFlag    = execcli.DurationFlag
	durationOf      = execcmd.DurationOf
	withDefaultText = execcli.WithDefaultText
	isTerminal      = execcmd.IsTerminal
	fdOf            = execcmd.FDOf
	printable       = execcmd.Printable
	seconds         = execcmd.Seconds
	ownerPID        = execcmd.OwnerPID
	ownerUser       = execcmd.OwnerUser
	orphanText      = execcmd.OrphanText
	libText         = execcmd.LibText
	fairFlag        = execcli.FairFlag
	priorityFlag    = execcli.PriorityFlag
)

const (
	exitCantCreate = execcmd.ExitCantCreate
	flagName       = execcmd.FlagName
)

type (
	signalCause = execcmd.SignalCause
	groupGuard  = execcmd.GroupGuard
)

var (
	startGroupGuard = execcmd.StartGroupGuard
	lookPath        = execcmd.LookPath
	cloneCmd        = execcmd.CloneCmd
	startError      = execcmd.StartError
	childProcAttr   = execcmd.ChildProcAttr
	exitStatus      = execcmd.ExitStatus
	checkLockDir    = execcmd.CheckLockDir
)

var (
	newExitError     = execcmd.NewExitError
	newDurationValue = execcmd.NewDurationValue
)

const (
	cudaVisibleEnv = execcmd.CUDAVisibleEnv
	cudaOrderEnv   = execcmd.CUDAOrderEnv
	guardGrace     = execcmd.GuardGrace
	flagClient     = execcmd.FlagClient
	flagFair       = execcmd.FlagFair
	flagPriority   = execcmd.FlagPriority
)

var (
	lookupEnv   = execcmd.LookupEnv
	killGroup   = execcmd.KillGroup
	commandLine = execcmd.CommandLine
)
