//go:build linux && cgo

package main

// #include <malloc.h>
import "C"

// trimCHeap returns the C heap's free pages to the OS (glibc's malloc_trim:
// every arena, whole free pages inside it too). SQLite's caches live there,
// and free() alone keeps what lies below the top of each arena resident.
func trimCHeap() { C.malloc_trim(0) }
