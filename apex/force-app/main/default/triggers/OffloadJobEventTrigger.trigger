/**
 * @description Subscriber for results that Offload workers publish. Platform
 * event triggers support after insert only. No logic here: see
 * OffloadJobEventTriggerHandler.
 */
trigger OffloadJobEventTrigger on Offload_Job_Event__e(after insert) {
    new OffloadJobEventTriggerHandler().run();
}
