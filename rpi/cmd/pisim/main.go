// Command pisim drives a virtual Raspberry Pi: a device directory around an
// SD-card image, booted by a model of the Pi firmware's tryboot A/B rules.
// See package rpi/pisim and `pisim --help`.
package main

import "os"

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }
