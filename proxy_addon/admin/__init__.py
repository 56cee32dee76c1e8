"""The admin web app: the Headteacher's exceptions, the technician's checks,
the Senior Leadership Team's view of self-reports."""
