package simgpu

import "fmt"

// Load makes modelBytes of service's model resident without running a job,
// as moving weights onto the card does. If the resident models (this one
// replacing service's current one) plus WorkingVRAM per running job exceed
// TotalVRAM, Load counts an OOM, leaves the model as it was and returns an
// error wrapping ErrOutOfMemory.
func (g *GPU) Load(service string, modelBytes int64) error {
	return g.update(func(s *state, _ int64) (bool, error) {
		used := s.residentTotal() + g.opts.WorkingVRAM*int64(len(s.Running))
		after := used + modelBytes - s.Resident[service]
		if after > g.opts.TotalVRAM {
			s.OOMs++
			return true, fmt.Errorf("simgpu: load %s: %w", service, &oomError{
				gpu: g.index, need: modelBytes, total: g.opts.TotalVRAM, used: used,
				free: max(g.opts.TotalVRAM-used, 0),
			})
		}
		s.Resident[service] = modelBytes
		return true, nil
	})
}
