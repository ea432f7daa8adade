package simgpu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// appendJournal records a job that began. It runs under the GPU's mutex.
func appendJournal(path string, ref JobRef) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("simgpu: journal: %w", err)
	}
	defer f.Close()
	b, err := json.Marshal(ref)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	return err
}

// Journal returns every job that began on the GPU since the last Reset, in
// order, from every process: tests use it to see that no job ran twice.
func (g *GPU) Journal() ([]JobRef, error) {
	f, err := os.Open(g.journal)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []JobRef
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ref JobRef
		if err := json.Unmarshal(sc.Bytes(), &ref); err != nil {
			return nil, fmt.Errorf("simgpu: journal %s: %w", g.journal, err)
		}
		out = append(out, ref)
	}
	return out, sc.Err()
}
