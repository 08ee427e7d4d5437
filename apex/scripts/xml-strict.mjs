// Strict XML well-formedness, shared by the apex/ checks.
//
// fast-xml-parser's XMLValidator is lenient: it accepts, for example, a
// comment containing "--", which the XML 1.0 spec forbids
// (https://www.w3.org/TR/xml/#sec-comments) and which the Metadata API refuses.
// saxes is a non-validating but fully conformant XML 1.0 parser: it reports
// every well-formedness error (malformed comments, mismatched tags, bad
// entities, unbound namespace prefixes, text after the root element, ...).
import { SaxesParser } from 'saxes';

/**
 * Throws an Error naming line:column and the first well-formedness problem.
 * @param {string} text XML document
 */
export function assertWellFormed(text) {
    const parser = new SaxesParser({ xmlns: true, position: true });
    const errors = [];
    parser.on('error', (err) => errors.push(err.message));
    let rootSeen = false;
    parser.on('opentag', () => {
        rootSeen = true;
    });
    parser.write(text).close();
    if (!rootSeen && errors.length === 0) {
        errors.push('document has no root element');
    }
    if (errors.length) {
        throw new Error(`not well-formed XML: ${errors[0]}`);
    }
}
