/**
 * @description The one trigger on ContentVersion. No logic here: see
 * ContentVersionTriggerHandler.
 */
trigger ContentVersionTrigger on ContentVersion(after insert) {
    new ContentVersionTriggerHandler().run();
}
