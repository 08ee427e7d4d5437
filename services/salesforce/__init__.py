"""Talking to Salesforce: the REST client and its error classification (the only simple-salesforce
import), OAuth tokens shared by a dyno's work processes, and Outbound Message sessions kept encrypted."""
