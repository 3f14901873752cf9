
    package policy
    allow = false
