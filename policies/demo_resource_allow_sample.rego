# DEMO ONLY: a resource policy that admits the sample TEE (no hardware) when its appraisal is affirming.
# The README demo sets it explicitly; it is never a default and never belongs in production.
package policy

import rego.v1

default allow := false

allow if {
	count(input.submods) > 0
	every _, submod in input.submods {
		submod["ear.status"] == "affirming"
	}
}
