package rpi_test

import (
	"fmt"

	"github.com/healthguard/gateway-ota/rpi"
)

// A confirmer on a trial boot of partition 3: the firmware reports the flag
// and the partition, autoboot.txt names 3 as the trial, so the trial is real
// and the commit swaps the two partitions in a file of the same size.
func Example() {
	onCard, _ := rpi.NewAutoboot(2, 3).RenderPadded(rpi.AutobootMaxSize)

	a, err := rpi.ParseAutoboot(onCard)
	if err != nil {
		fmt.Println(err)
		return
	}
	boot := rpi.Bootloader{Tryboot: true, Partition: 3, BootMode: rpi.BootModeSD}
	fmt.Println("on trial:", boot.OnTrial(a))

	a.SetCommitted(boot.BootedPartition(a))
	a.SetTrial(2)
	commit, err := a.RenderPadded(len(onCard))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("same size:", len(commit) == len(onCard))
	fmt.Printf("%s", a.Render())
	// Output:
	// on trial: true
	// same size: true
	// [all]
	// tryboot_a_b=1
	// boot_partition=3
	// [tryboot]
	// boot_partition=2
}
