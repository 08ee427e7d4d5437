// Offload apex/ metadata checks (run by .ci/apex-check, or `npm run check`).
//
// 1. sfdx-project.json has a sourceApiVersion like "66.0".
// 2. Every .xml file under apex/ (node_modules excluded) is well-formed XML,
//    checked by a strict XML 1.0 parser (saxes, see xml-strict.mjs): a comment
//    containing "--", a mismatched tag or a bad entity fails. Every *-meta.xml
//    under force-app/ and optional/ also has its root element in the Metadata
//    API namespace.
// 3. Every <apiVersion> in those files equals sourceApiVersion (one version
//    everywhere).
// 4. <parameterValue> (header formulas) are single-line, untrimmed-free.
// 5. Every .cls / .trigger has its -meta.xml, and every class/trigger
//    -meta.xml has an <apiVersion> and <status>Active</status>.
// Apex syntax is checked separately by `prettier --check`, which parses every
// .cls/.trigger with Salesforce's own parser (jorje, via prettier-plugin-apex).
import { readFileSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { walk } from './files.mjs';
import { assertWellFormed } from './xml-strict.mjs';

const root = new URL('..', import.meta.url).pathname;
const METADATA_NS = 'http://soap.sforce.com/2006/04/metadata';
const errors = [];

const project = JSON.parse(readFileSync(join(root, 'sfdx-project.json'), 'utf8'));
const version = project.sourceApiVersion;
if (!/^\d{2,3}\.0$/.test(version ?? '')) {
    errors.push(`sfdx-project.json: sourceApiVersion "${version}" is not like "66.0"`);
}

const files = [...walk(join(root, 'force-app')), ...walk(join(root, 'optional'))];
const metaFiles = files.filter((f) => f.endsWith('-meta.xml'));
// Every other .xml under apex/ (e.g. a package.xml manifest) must be well-formed too.
const otherXml = walk(root).filter((f) => f.endsWith('.xml') && !metaFiles.includes(f));
for (const file of otherXml) {
    try {
        assertWellFormed(readFileSync(file, 'utf8'));
    } catch (e) {
        errors.push(`${relative(root, file)}: ${e.message}`);
    }
}
const sources = files.filter((f) => f.endsWith('.cls') || f.endsWith('.trigger'));
const parser = new XMLParser({ ignoreAttributes: false, parseTagValue: false });
let versionsChecked = 0;

function collectApiVersions(node, found) {
    if (Array.isArray(node)) {
        node.forEach((child) => collectApiVersions(child, found));
    } else if (node && typeof node === 'object') {
        for (const [key, value] of Object.entries(node)) {
            if (key === 'apiVersion') {
                (Array.isArray(value) ? value : [value]).forEach((v) => found.push(String(v).trim()));
            } else {
                collectApiVersions(value, found);
            }
        }
    }
    return found;
}

for (const file of metaFiles) {
    const name = relative(root, file);
    const text = readFileSync(file, 'utf8');
    try {
        assertWellFormed(text);
    } catch (e) {
        errors.push(`${name}: ${e.message}`);
        continue;
    }
    const doc = parser.parse(text);
    const rootName = Object.keys(doc).find((k) => k !== '?xml' && !k.startsWith('#'));
    const rootNode = doc[rootName];
    if (!rootNode || rootNode['@_xmlns'] !== METADATA_NS) {
        errors.push(`${name}: root <${rootName}> must have xmlns="${METADATA_NS}"`);
        continue;
    }
    for (const found of collectApiVersions(rootNode, [])) {
        versionsChecked++;
        if (found !== version) {
            errors.push(`${name}: apiVersion ${found} differs from sfdx-project.json ${version}`);
        }
    }
    // A header formula with stray whitespace/newlines would change the header.
    for (const match of text.matchAll(/<parameterValue>([^<]*)<\/parameterValue>/g)) {
        if (match[1] !== match[1].trim() || match[1].includes('\n')) {
            errors.push(`${name}: <parameterValue> must be one line without surrounding whitespace`);
        }
    }
    if (rootName === 'ApexClass' || rootName === 'ApexTrigger') {
        if (rootNode.apiVersion === undefined) errors.push(`${name}: missing <apiVersion>`);
        if (rootNode.status !== 'Active') errors.push(`${name}: <status> must be Active`);
    }
}

for (const source of sources) {
    if (!existsSync(`${source}-meta.xml`)) {
        errors.push(`${relative(root, source)}: missing ${relative(root, source)}-meta.xml`);
    }
}

console.log(`sfdx-project.json sourceApiVersion: ${version}`);
console.log(
    `checked ${metaFiles.length} -meta.xml files (strictly well-formed, Metadata API namespace) and ${otherXml.length} other .xml files (strictly well-formed)`
);
console.log(`checked ${versionsChecked} <apiVersion> values against ${version}`);
console.log(`checked ${sources.length} .cls/.trigger files have a -meta.xml`);
if (errors.length) {
    console.error(`\n${errors.length} problem(s):`);
    errors.forEach((e) => console.error(`  - ${e}`));
    process.exit(1);
}
console.log('metadata checks passed');
