
    package policy
    allow = true
