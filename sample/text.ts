// Words and names for the sample. A share of them is hostile on purpose: quotes, commas, newlines,
// tabs, backslashes, a lone `\.` (COPY's end-of-data marker), non-Latin scripts and emoji, so that
// every stage is exercised by text as it really arrives from a French app used by real people.
import type { Rng } from './prng.ts';

export const FIRSTNAMES = [
  'Marie', 'Jean', 'Camille', 'Lucas', 'Léa', 'Hugo', 'Chloé', 'Louis', 'Manon', 'Gabriel', 'Inès', 'Arthur',
  'Zoé', 'François', 'Anaïs', 'Jérôme', 'Hélène', 'Noël', 'Maëlys', 'Benoît', 'Céline', 'Théo', 'Sarah', 'Mohamed',
  'Fatima', 'Yasmine', 'Karim', 'Nguyễn Thị', 'Ayşe', 'Søren', 'Jean-Baptiste', 'Marie-Hélène', "D'Arcy",
  '陽菜', 'Юлия', 'محمد', 'Zoë 🌸',
] as const;

export const LASTNAMES = [
  'Martin', 'Bernard', 'Dubois', 'Thomas', 'Robert', 'Richard', 'Petit', 'Durand', 'Leroy', 'Moreau', 'Simon',
  'Laurent', 'Lefèvre', 'Michel', 'Garcia', 'Rousseau', 'Blanc', 'Müller', "O'Connor", "D'Almeida", 'Le Goff',
  'Nguyễn', 'Benali', 'El Amrani', 'Da Silva', 'Lambert-Rochereau', 'de La Fontaine', '山田', 'Иванова',
  'بن علي', 'Smith, Jr.', 'Öztürk', 'Ødegård',
] as const;

const ASCII_FOLD: Record<string, string> = {
  à: 'a', â: 'a', ä: 'a', á: 'a', ç: 'c', é: 'e', è: 'e', ê: 'e', ë: 'e', î: 'i', ï: 'i', í: 'i', ô: 'o', ö: 'o',
  ó: 'o', ø: 'o', ù: 'u', û: 'u', ü: 'u', ú: 'u', ÿ: 'y', ñ: 'n', ş: 's', ễ: 'e', ị: 'i', æ: 'ae', œ: 'oe',
};

/** The ASCII part of a name usable in an e-mail's local part (may be empty for non-Latin names). */
export function emailSlug(name: string): string {
  let out = '';
  for (const ch of name.toLowerCase()) {
    const folded = ASCII_FOLD[ch] ?? ch;
    if (/^[a-z0-9]+$/.test(folded)) out += folded;
    else if (ch === '-' || ch === ' ') out += '-';
  }
  return out.replace(/-+/g, '-').replace(/^-|-$/g, '');
}

export const EMAIL_DOMAINS = ['gmail.com', 'orange.fr', 'free.fr', 'hotmail.fr', 'yahoo.fr', 'laposte.net', 'wanadoo.fr', 'sfr.fr', 'outlook.com', 'icloud.com'] as const;

const FOODS = [
  'tomate', 'courgette', 'pois chiche', 'lentilles corail', 'quinoa', 'saumon', 'poulet', 'tofu', 'avocat', 'épinards',
  'patate douce', 'brocoli', 'riz complet', 'fromage blanc', 'amandes', 'pomme', 'poire', 'fenouil', 'betterave',
  'cabillaud', 'œuf', 'huile d’olive', 'crème fraîche', 'pâtes complètes', 'yaourt grec', 'noix de cajou',
];

const TRICKY_NAMES = [
  'Salade "niçoise", version d\'été',
  'Crème brûlée, façon « grand-mère »',
  'Poke bowl\tau saumon',
  'Gratin\nde courgettes',
  'Chemin C:\\recettes\\soupe',
  '日本語のレシピ：味噌汁',
  'سلطة صحية بالحمص',
  'Smoothie 🍓🥝 vitaminé',
  'Ratatouille “maison” — 4 pers.',
  'Velouté; potimarron, châtaigne',
  '\\.',
  'Œufs à la coque & mouillettes',
];

/** 255 × 'é': the longest name that still fits VARCHAR(255) (characters, not bytes). */
export const LONGEST_NAME = 'é'.repeat(255);

export function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** A dish or food name; hostile once in `trickyRate`. */
export function dishName(rng: Rng, trickyRate = 0.08): string {
  if (rng.chance(trickyRate)) return rng.pick(TRICKY_NAMES);
  const a = rng.pick(FOODS);
  const b = rng.pick(FOODS);
  return rng.chance(0.5) ? `${capitalize(a)} et ${b}` : `${capitalize(a)} ${rng.pick(['rôti', 'vapeur', 'en salade', 'au four', 'grillé', 'mijoté', 'cru'])}`;
}

export function foodName(rng: Rng): string {
  return rng.chance(0.05) ? rng.pick(TRICKY_NAMES) : capitalize(rng.pick(FOODS));
}

const SENTENCES = [
  'Bonjour, comment s’est passée votre semaine ?',
  'Pensez à boire 1,5 L d\'eau par jour.',
  'Merci pour le "menu" de la semaine, c\'était top !',
  'Rendez-vous confirmé pour jeudi à 18h30.',
  'J\'ai pris 2 kg… mais je garde le moral 💪',
  'Voici la liste :\n- légumes\n- fruits\n- protéines',
  'Colonne1\tColonne2\tColonne3',
  'Le fichier est dans C:\\Users\\marie\\Documents\\bilan.pdf',
  'Très bien, à bientôt ! 😊',
  'こんにちは、今日の食事はどうでしたか？',
  'شكراً جزيلاً على النصائح',
  'Objectif : -3 kg d’ici l’été, sans régime "miracle".',
  'Ligne avec "guillemets", virgules, et \\ antislash',
  'Ça va mieux depuis que je mange à heures fixes.',
];

/** Free text (messages, descriptions, answers): one to a few sentences, sometimes hostile. */
export function sentence(rng: Rng): string {
  const n = rng.weighted([[1, 6], [2, 3], [3, 1]]);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) parts.push(rng.pick(SENTENCES));
  return parts.join(rng.chance(0.3) ? '\n' : ' ');
}

/** A long text (a few kB), as a coach's detailed message can be. */
export function longText(rng: Rng): string {
  const parts: string[] = [];
  const n = rng.int(20, 60);
  for (let i = 0; i < n; i++) parts.push(rng.pick(SENTENCES));
  return parts.join('\n');
}

export function pictureUrl(rng: Rng, folder: string): string {
  const hex = (rng.next() * 0xffffffff).toString(16).padStart(8, '0').slice(0, 8);
  return `https://my-alfred-data.s3.eu-west-3.amazonaws.com/${folder}/${hex}.${rng.pick(['jpg', 'png', 'webp'])}`;
}
