# Default attestation policy of the sample TEE. The sample TEE has no hardware: it is affirming only when its svn
# is a provisioned reference value (query_reference_value("sample_svn")), and the default resource policy refuses it anyway.
#   reference values: sample_svn (list of accepted svn strings)
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

known_svn if input.sample.svn in references("sample_svn")

executables := 3 if known_svn

hardware := 2 if known_svn

configuration := 2 if known_svn

# The AR4SI vector, as trustee's EAR broker reads it.
trust_claims := {
	"executables": executables,
	"hardware": hardware,
	"configuration": configuration,
	"instance-identity": instance_identity,
}
