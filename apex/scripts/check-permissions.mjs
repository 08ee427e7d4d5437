// Offload apex/ permission dependency check (run by .ci/apex-check, or
// `npm run check`).
//
// Salesforce refuses to deploy a permission set or profile that grants an
// object permission without the permissions it depends on, e.g.
//   "Permission Delete depends on permission(s): Edit".
// This script reads every *.permissionset-meta.xml and *.profile-meta.xml under
// apex/ (or the files given as arguments) and fails on any missing dependency,
// naming the file, the object (or field) and the permission.
//
// Object permissions (<objectPermissions>), per the ObjectPermissions object
// reference
// (https://developer.salesforce.com/docs/platform/object-reference/references/standard-objects/object-objectpermissions.html)
// and Help "Object Permissions"
// (https://help.salesforce.com/s/articleView?id=sf.users_profiles_object_perms.htm):
//   Create     needs Read
//   Edit       needs Read
//   Delete     needs Read, Edit
//   View All   needs Read
//   Modify All needs Read, Edit, Delete, View All
// Field permissions (<fieldPermissions>), per the FieldPermissions object
// reference: editable needs readable.
//
// Usage: node scripts/check-permissions.mjs [file.permissionset-meta.xml ...]
import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { walk } from './files.mjs';
import { assertWellFormed } from './xml-strict.mjs';

const root = new URL('..', import.meta.url).pathname;

// Metadata API element -> label used in Setup and in Salesforce's error text.
const LABELS = {
    allowRead: 'Read',
    allowCreate: 'Create',
    allowEdit: 'Edit',
    allowDelete: 'Delete',
    viewAllRecords: 'View All',
    modifyAllRecords: 'Modify All'
};

// permission -> permissions it needs on the same object.
const OBJECT_DEPENDENCIES = {
    allowCreate: ['allowRead'],
    allowEdit: ['allowRead'],
    allowDelete: ['allowRead', 'allowEdit'],
    viewAllRecords: ['allowRead'],
    modifyAllRecords: [
        'allowRead',
        'allowEdit',
        'allowDelete',
        'viewAllRecords'
    ]
};

const isTrue = (value) => String(value ?? '').trim() === 'true';
const asList = (value) =>
    value === undefined ? [] : Array.isArray(value) ? value : [value];

/**
 * Problems in one permission set / profile XML text.
 * @param {string} name file name for messages
 * @param {string} text the XML
 * @returns {string[]} one message per missing dependency
 */
export function permissionProblems(name, text) {
    assertWellFormed(text);
    const doc = new XMLParser({ parseTagValue: false }).parse(text);
    const top = doc.PermissionSet ?? doc.Profile;
    if (!top) {
        return [
            `${name}: root element is neither <PermissionSet> nor <Profile>`
        ];
    }
    const problems = [];
    for (const perms of asList(top.objectPermissions)) {
        const object = perms.object ?? '(no <object>)';
        for (const [permission, needs] of Object.entries(OBJECT_DEPENDENCIES)) {
            if (!isTrue(perms[permission])) continue;
            const missing = needs.filter((need) => !isTrue(perms[need]));
            if (missing.length) {
                problems.push(
                    `${name}: object ${object}: ${LABELS[permission]} (${permission}) ` +
                        `depends on ${missing.map((m) => `${LABELS[m]} (${m})`).join(', ')}, ` +
                        'which is not granted'
                );
            }
        }
    }
    for (const perms of asList(top.fieldPermissions)) {
        if (isTrue(perms.editable) && !isTrue(perms.readable)) {
            problems.push(
                `${name}: field ${perms.field ?? '(no <field>)'}: editable depends on readable, which is not granted`
            );
        }
    }
    return problems;
}

const isMain =
    resolve(process.argv[1] ?? '') ===
    resolve(new URL(import.meta.url).pathname);
if (isMain) {
    const args = process.argv.slice(2);
    const files = args.length
        ? args.map((a) => resolve(a))
        : walk(root).filter(
              (f) =>
                  f.endsWith('.permissionset-meta.xml') ||
                  f.endsWith('.profile-meta.xml')
          );
    const problems = [];
    for (const file of files) {
        const name = relative(root, file);
        try {
            problems.push(
                ...permissionProblems(name, readFileSync(file, 'utf8'))
            );
        } catch (e) {
            problems.push(`${name}: ${e.message}`);
        }
    }
    console.log(
        `checked ${files.length} permission set / profile files for object and field permission dependencies`
    );
    if (files.length === 0 && args.length === 0) {
        console.error(
            'no *.permissionset-meta.xml or *.profile-meta.xml found'
        );
        process.exit(1);
    }
    if (problems.length) {
        console.error(`\n${problems.length} problem(s):`);
        problems.forEach((p) => console.error(`  - ${p}`));
        process.exit(1);
    }
    console.log('permission dependency checks passed');
}
