# Default attestation policy of AMD SEV-SNP (fails closed: nothing is affirmed without reference values).
# The verifier has already proved the report is signed by a VCEK/VLEK chaining to AMD's ARK, that the
# certificate's TCB equals REPORTED_TCB, and the REPORT_DATA / HOST_DATA (init-data) bindings.
#
# Reference values (query_reference_value(name), lists of strings):
#   snp_measurement          accepted MEASUREMENT values (lowercase hex, 96 digits)
#   snp_min_tcb_bootloader   minimum REPORTED_TCB.BOOT_LOADER (decimal); all four snp_min_tcb_* are required
#   snp_min_tcb_tee          minimum REPORTED_TCB.TEE
#   snp_min_tcb_snp          minimum REPORTED_TCB.SNP
#   snp_min_tcb_microcode    minimum REPORTED_TCB.MICROCODE
#   snp_min_tcb_fmc          minimum REPORTED_TCB.FMC, required for Turin reports (which carry fmc)
#
# executables 3 (approved boot) when MEASUREMENT is listed, else 33.
# hardware 2 (genuine) when REPORTED_TCB meets every minimum, else 97.
# configuration 2 (approved) when the guest policy forbids DEBUG and a migration agent and the report is
# for VMPL 0, else 36 (unsafe).
package policy

import rego.v1

default executables := 33

default hardware := 97

default configuration := 36

default instance_identity := 0

# Reference values through trustee's built-in: the stored list of accepted values, or [] when none is stored
# (query_reference_value answers null then), so a missing reference value never matches.
references(name) := values if {
	values := query_reference_value(name)
	is_array(values)
} else := []

tcb_components := ["bootloader", "tee", "snp", "microcode"]

executables := 3 if input.snp.measurement in references("snp_measurement")

meets_minimum(component) if {
	minimums := references(sprintf("snp_min_tcb_%s", [component]))
	count(minimums) > 0
	every minimum in minimums {
		input.snp.reported_tcb[component] >= to_number(minimum)
	}
}

# Read through object.get: regorus and OPA disagree on `not` over a missing input.snp.reported_tcb.
reported_tcb := object.get(input.snp, "reported_tcb", {})

fmc_ok if not "fmc" in object.keys(reported_tcb)

fmc_ok if meets_minimum("fmc")

hardware := 2 if {
	every component in tcb_components {
		meets_minimum(component)
	}
	fmc_ok
}

configuration := 2 if {
	input.snp.debug == false
	input.snp.migrate_ma == false
	input.snp.vmpl == 0
}

# The AR4SI vector, as trustee's EAR broker reads it.
trust_claims := {
	"executables": executables,
	"hardware": hardware,
	"configuration": configuration,
	"instance-identity": instance_identity,
}
