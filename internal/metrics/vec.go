package metrics

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// vec holds a family's children by their label values.
type vec[T any] struct {
	d        *desc
	newChild func() T
	children sync.Map // key(values) -> *child[T]
}

type child[T any] struct {
	values []string
	m      T
}

func newVec[T any](d *desc, newChild func() T) *vec[T] { return &vec[T]{d: d, newChild: newChild} }

// key identifies label values: each but the last is prefixed with its
// length, so that no two lists of values share a key.
func key(values []string) string {
	if len(values) == 1 {
		return values[0]
	}
	var b strings.Builder
	for i, v := range values {
		if i < len(values)-1 {
			b.WriteString(strconv.Itoa(len(v)))
			b.WriteByte(':')
		}
		b.WriteString(v)
	}
	return b.String()
}

func (v *vec[T]) with(values []string) T {
	if len(values) != len(v.d.labelNames) {
		panic(fmt.Sprintf("metrics: %s takes %d label values (%v), got %d", v.d.name, len(v.d.labelNames), v.d.labelNames, len(values)))
	}
	k := key(values)
	if c, ok := v.children.Load(k); ok {
		return c.(*child[T]).m
	}
	c, _ := v.children.LoadOrStore(k, &child[T]{values: slices.Clone(values), m: v.newChild()})
	return c.(*child[T]).m
}

func (v *vec[T]) each(f func(values []string, m T)) {
	v.children.Range(func(_, c any) bool {
		ch := c.(*child[T])
		f(ch.values, ch.m)
		return true
	})
}

func (v *vec[T]) reset() { v.children.Clear() }
