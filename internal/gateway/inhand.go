package gateway

// The prompts this gateway answers for right now: a goroutine of its own
// waits for, dispatches or follows each. Adoption takes up a prompt that
// Redis says is this gateway's but that no goroutine here has in hand: an
// adoption whose answer Redis lost (it ran, but Redis died or was slow
// past the bound) leaves exactly that, and without this nobody would ever
// run the prompt (seen in the chaos test: a prompt pending for ever).

// takeInHand records that a goroutine of this gateway answers for prompt
// until the returned func is called (once).
func (g *Gateway) takeInHand(prompt string) (release func()) {
	g.inHandMu.Lock()
	g.inHand[prompt]++
	g.inHandMu.Unlock()
	done := false
	return func() {
		g.inHandMu.Lock()
		defer g.inHandMu.Unlock()
		if done {
			return
		}
		done = true
		if g.inHand[prompt]--; g.inHand[prompt] <= 0 {
			delete(g.inHand, prompt)
		}
	}
}

// hasInHand reports whether a goroutine of this gateway answers for prompt.
func (g *Gateway) hasInHand(prompt string) bool {
	g.inHandMu.Lock()
	defer g.inHandMu.Unlock()
	return g.inHand[prompt] > 0
}
