/**
 * @file tree-sitter grammar for the .peft pipeline language checked by peftc.
 *
 * It mirrors the language of peftc's own parser (src/syntax/) for editors (highlighting,
 * folding, indentation, locals). It must not decide what is valid beyond syntax: field
 * names, types and units are the checker's business, so any identifier is accepted as a field.
 */

/// <reference types="tree-sitter-cli/dsl" />
// @ts-check

const PREC = {
  compare: 1,
  quantized: 2,
  add: 3,
  mul: 4,
  unary: 5,
};

/** Keywords that may still be used as a field name (`model = x`) or a member (`reviews.eval`). */
const SOFT_KEYWORDS = [
  'use', 'model', 'quant', 'adapter', 'dataset', 'train', 'eval', 'merge', 'export',
  'device', 'let', 'to', 'as', 'quantized', 'sweep', 'escalate', 'mix', 'baseline',
];

const commaSep1 = (rule) => seq(rule, repeat(seq(',', rule)), optional(','));
const commaSep = (rule) => optional(commaSep1(rule));

/**
 * `kw name (= head)? { body }?`, as in grammar/peft.pest: the head names what the declaration
 * builds on (`lora`, `hf("...")`, another declaration) and a block after it is the body.
 * @param {string} kw
 */
const declaration = (kw) => ($) =>
  seq(
    kw,
    field('name', $.identifier),
    optional(seq('=', field('value', $._head))),
    optional(field('body', $.block)),
  );

module.exports = grammar({
  name: 'peft',

  extras: ($) => [/\s/, $.comment, $.doc_comment],

  word: ($) => $.identifier,

  supertypes: ($) => [$._item, $._expression],

  rules: {
    source_file: ($) => repeat($._item),

    _item: ($) =>
      choice(
        $.use_declaration,
        $.model_declaration,
        $.quant_declaration,
        $.adapter_declaration,
        $.dataset_declaration,
        $.train_declaration,
        $.eval_declaration,
        $.merge_declaration,
        $.device_declaration,
        $.let_declaration,
        $.export_statement,
      ),

    // use std.recipes.{lora_default, qlora}   use std.recipes.qlora as q   use "./x.peft" as x
    use_declaration: ($) =>
      seq(
        'use',
        field('path', choice($.module_path, $.string)),
        optional(seq('as', field('alias', $.identifier))),
      ),

    module_path: ($) =>
      seq(
        $.identifier,
        repeat(seq('.', $.identifier)),
        optional(seq('.', $.import_list)),
      ),

    import_list: ($) => seq('{', commaSep($.import_item), '}'),

    import_item: ($) =>
      seq(field('name', $.identifier), optional(seq('as', field('alias', $.identifier)))),

    model_declaration: ($) => declaration('model')($),
    quant_declaration: ($) => declaration('quant')($),
    adapter_declaration: ($) => declaration('adapter')($),
    dataset_declaration: ($) => declaration('dataset')($),
    train_declaration: ($) => declaration('train')($),
    eval_declaration: ($) => declaration('eval')($),
    merge_declaration: ($) => declaration('merge')($),
    device_declaration: ($) => declaration('device')($),
    let_declaration: ($) => declaration('let')($),

    // export tune.sent to "out/sentiment" as peft { ... }
    export_statement: ($) =>
      seq(
        'export',
        field('source', $._expression),
        'to',
        field('destination', $.string),
        optional(seq('as', field('format', $.identifier))),
        optional(field('body', $.block)),
      ),

    // { key = value, gate expr, on device }; commas between items are optional.
    block: ($) => seq('{', repeat(seq($._block_item, optional(','))), '}'),

    _block_item: ($) => choice($.field, $.gate, $.on_clause),

    // `r = 8`, and `stacked.tone: 0.3` inside `mix { ... }` (either separator is accepted).
    field: ($) =>
      seq(
        field('key', choice($._key, $.key_path)),
        choice('=', ':'),
        field('value', $._expression),
      ),

    key_path: ($) => seq($._key, repeat1(seq('.', $._key))),

    _key: ($) => choice($.identifier, alias(choice(...SOFT_KEYWORDS), $.identifier)),

    gate: ($) => seq('gate', field('condition', $._expression)),

    on_clause: ($) => seq('on', field('device', $._expression)),

    // A declaration head: an expression without a trailing block (that block is the
    // declaration's body) and without comparisons. Arithmetic and `-x` are accepted here for
    // `let`, even where grammar/peft.pest is stricter; the checker reports what is not allowed.
    _head: ($) =>
      choice(
        $._head_term,
        alias($.head_binary, $.binary_expression),
        alias($.head_unary, $.unary_expression),
      ),

    head_binary: ($) =>
      choice(
        prec.left(PREC.add, seq(
          field('left', $._head),
          field('operator', choice('+', '-')),
          field('right', $._head),
        )),
        prec.left(PREC.mul, seq(
          field('left', $._head),
          field('operator', choice('*', '/')),
          field('right', $._head),
        )),
      ),

    head_unary: ($) => prec(PREC.unary, seq(field('operator', '-'), field('operand', $._head))),

    _head_term: ($) => choice($._primary, alias($.head_quantized, $.quantized_expression)),

    head_quantized: ($) =>
      prec.left(PREC.quantized, seq(
        field('model', $._head_term),
        'quantized',
        field('quant', choice($.identifier, $.reference)),
      )),

    _expression: ($) =>
      choice(
        $.binary_expression,
        $.unary_expression,
        $.quantized_expression,
        $.application,
        $._primary,
      ),

    _primary: ($) =>
      choice(
        $.sweep_expression,
        $.escalate_expression,
        $.mix_expression,
        $.call,
        $.reference,
        $.identifier,
        $.baseline,
        $.boolean,
        $.integer,
        $.float,
        $.quantity,
        $.string,
        $.list,
        $.block,
        $.parenthesized_expression,
      ),

    binary_expression: ($) =>
      choice(
        prec.left(PREC.compare, seq(
          field('left', $._expression),
          field('operator', choice('>=', '<=', '==', '!=', '>', '<')),
          field('right', $._expression),
        )),
        prec.left(PREC.add, seq(
          field('left', $._expression),
          field('operator', choice('+', '-')),
          field('right', $._expression),
        )),
        prec.left(PREC.mul, seq(
          field('left', $._expression),
          field('operator', choice('*', '/')),
          field('right', $._expression),
        )),
      ),

    unary_expression: ($) =>
      prec(PREC.unary, seq(field('operator', '-'), field('operand', $._expression))),

    // llama quantized q4
    quantized_expression: ($) =>
      prec.left(PREC.quantized, seq(
        field('model', $._expression),
        'quantized',
        field('quant', $._expression),
      )),

    sweep_expression: ($) => seq('sweep', field('values', $.list)),
    escalate_expression: ($) => seq('escalate', field('values', $.list)),

    // mix { a: 0.7, b: 0.3 }
    mix_expression: ($) => seq('mix', field('weights', $.block)),

    // lora_default { r = 8 }   cosine { warmup = 10% }   hf("x") { task = ... }
    application: ($) =>
      seq(
        field('base', choice($.identifier, $.reference, $.call)),
        field('body', $.block),
      ),

    // hf("repo", revision = "main")   classify(labels = [...])   cuda(0)
    call: ($) =>
      seq(
        field('function', choice($.identifier, $.reference)),
        field('arguments', $.arguments),
      ),

    arguments: ($) => seq('(', commaSep(choice($.named_argument, $._expression)), ')'),

    named_argument: ($) => seq(field('name', $._key), '=', field('value', $._expression)),

    // tune.sent   baseline.accuracy   std.recipes.lora_default
    reference: ($) =>
      seq(
        field('base', choice($.identifier, $.baseline)),
        repeat1(seq('.', field('member', $._key))),
      ),

    list: ($) => seq('[', commaSep($._expression), ']'),

    parenthesized_expression: ($) => seq('(', $._expression, ')'),

    baseline: (_) => 'baseline',

    boolean: (_) => choice('true', 'false'),

    // Digits may be grouped with `_` (`1_000`), as in grammar/peft.pest.
    integer: (_) => /\d[\d_]*/,

    float: (_) => token(choice(
      /\d[\d_]*\.\d+([eE][+-]?\d+)?/,
      /\d[\d_]*[eE][+-]?\d+/,
    )),

    // 10%   24GiB   512MiB
    quantity: ($) =>
      seq(field('value', choice($.integer, $.float)), field('unit', $.unit)),

    unit: (_) => token.immediate(prec(1, /%|[KMGT]i?B|B/)),

    string: ($) =>
      seq(
        '"',
        repeat(choice($.string_content, $.escape_sequence)),
        token.immediate('"'),
      ),

    string_content: (_) => token.immediate(prec(1, /[^"\\\n]+/)),

    escape_sequence: (_) =>
      token.immediate(seq('\\', choice(
        /["\\\/bfnrt0]/,
        /u\{[0-9a-fA-F]{1,6}\}/,
        /u[0-9a-fA-F]{4}/,
        /[^\n]/,
      ))),

    identifier: (_) => /[A-Za-z_][A-Za-z0-9_]*/,

    // `///` (but not `////`) starts a doc comment.
    doc_comment: (_) => token(seq('///', /([^/\n][^\n]*)?/)),

    // The two comment tokens never match the same text: `//x`, `//` and `////x` are comments.
    comment: (_) => token(choice(seq('//', /([^/\n][^\n]*)?/), seq('////', /[^\n]*/))),
  },
});
