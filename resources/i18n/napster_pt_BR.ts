<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="pt_BR">
    <context>
        <name>AdminChart</name>
        <message>
            <source>60 min ago</source>
            <translation>há 60 min</translation>
        </message>
        <message>
            <source>30 min</source>
            <translation>30 min</translation>
        </message>
        <message>
            <source>now</source>
            <translation>agora</translation>
        </message>
        <message>
            <source>Online peers</source>
            <translation>Peers online</translation>
        </message>
        <message>
            <source>Requests / min</source>
            <translation>Pedidos / min</translation>
        </message>
        <message>
            <source>Online peers and requests per minute appear here, one point every {seconds} s, for the last hour.</source>
            <translation>Peers online e pedidos por minuto aparecem aqui, um ponto a cada {seconds} s, durante a última hora.</translation>
        </message>
    </context>
    <context>
        <name>AdminLog</name>
        <message>
            <source>Log</source>
            <translation>Log</translation>
        </message>
        <message>
            <source>Filter log lines by text</source>
            <translation>Filtrar linhas do log por texto</translation>
        </message>
        <message>
            <source>Follow new lines</source>
            <translation>Seguir novas linhas</translation>
        </message>
        <message>
            <source>Untick to stop the log from scrolling while you read it</source>
            <translation>Desmarque para o log parar de rolar enquanto você lê</translation>
        </message>
        <message>
            <source>Clear</source>
            <translation>Limpar</translation>
        </message>
        <message>
            <source>Nothing logged yet. Peers joining, searches, refused connections and errors show here.</source>
            <translation>Nada registrado ainda. Entradas de peers, buscas, conexões recusadas e erros aparecem aqui.</translation>
        </message>
        <message>
            <source>No log line matches this level and text.</source>
            <translation>Nenhuma linha do log corresponde a este nível e texto.</translation>
        </message>
        <message>
            <source>Info and above</source>
            <translation>Informação e acima</translation>
        </message>
        <message>
            <source>Warnings and errors</source>
            <translation>Avisos e erros</translation>
        </message>
        <message>
            <source>Errors only</source>
            <translation>Só erros</translation>
        </message>
        <message>
            <source>Everything (debug)</source>
            <translation>Tudo (depuração)</translation>
        </message>
    </context>
    <context>
        <name>AdminTables</name>
        <message>
            <source>Debug</source>
            <translation>Depuração</translation>
        </message>
        <message>
            <source>Info</source>
            <translation>Info</translation>
        </message>
        <message>
            <source>Warning</source>
            <translation>Aviso</translation>
        </message>
        <message>
            <source>Error</source>
            <translation>Erro</translation>
        </message>
        <message>
            <source>Critical</source>
            <translation>Crítico</translation>
        </message>
        <message>
            <source>in {seconds} s</source>
            <translation>em {seconds} s</translation>
        </message>
        <message>
            <source>when unbanned</source>
            <translation>ao desbanir</translation>
        </message>
        <message>
            <source>in {minutes} min</source>
            <translation>em {minutes} min</translation>
        </message>
        <message>
            <source>Address</source>
            <translation>Endereço</translation>
        </message>
        <message>
            <source>Agent</source>
            <translation>Agente</translation>
        </message>
        <message>
            <source>Files</source>
            <translation>Arquivos</translation>
        </message>
        <message>
            <source>Shared</source>
            <translation>Compartilhado</translation>
        </message>
        <message>
            <source>Connected since</source>
            <translation>Conectado desde</translation>
        </message>
        <message>
            <source>Last seen</source>
            <translation>Visto por último</translation>
        </message>
        <message>
            <source>Server</source>
            <translation>Servidor</translation>
        </message>
        <message>
            <source>Name</source>
            <translation>Nome</translation>
        </message>
        <message>
            <source>Size</source>
            <translation>Tamanho</translation>
        </message>
        <message>
            <source>Peers</source>
            <translation>Peers</translation>
        </message>
        <message>
            <source>Hash</source>
            <translation>Hash</translation>
        </message>
        <message>
            <source>Reason</source>
            <translation>Motivo</translation>
        </message>
        <message>
            <source>Banned at</source>
            <translation>Banido em</translation>
        </message>
        <message>
            <source>Ends</source>
            <translation>Termina</translation>
        </message>
        <message>
            <source>Time</source>
            <translation>Hora</translation>
        </message>
        <message>
            <source>Level</source>
            <translation>Nível</translation>
        </message>
        <message>
            <source>Source</source>
            <translation>Origem</translation>
        </message>
        <message>
            <source>Message</source>
            <translation>Mensagem</translation>
        </message>
    </context>
    <context>
        <name>AdminWindow</name>
        <message>
            <source>Relay</source>
            <translation>Retransmissão</translation>
        </message>
        <message>
            <source>Quit the index server</source>
            <translation>Sair do servidor de índice</translation>
        </message>
        <message>
            <source>{peers} peers are online. Quitting disconnects every one of them and they cannot search until the server runs again. Quit?</source>
            <translation>{peers} peers estão online. Sair desconecta todos eles, e eles não podem buscar até o servidor voltar a funcionar. Sair?</translation>
        </message>
        <message>
            <source>Stop the index server</source>
            <translation>Parar o servidor de índice</translation>
        </message>
        <message>
            <source>{peers} peers are online. Stopping disconnects every one of them and they cannot search until you press Start again. Stop?</source>
            <translation>{peers} peers estão online. Parar desconecta todos eles, e eles não podem buscar até você clicar em Iniciar de novo. Parar?</translation>
        </message>
        <message>
            <source>Napster P2P index server</source>
            <translation>Servidor de índice Napster P2P</translation>
        </message>
        <message>
            <source>Peers</source>
            <translation>Peers</translation>
        </message>
        <message>
            <source>Files</source>
            <translation>Arquivos</translation>
        </message>
        <message>
            <source>Bans</source>
            <translation>Banimentos</translation>
        </message>
        <message>
            <source>&amp;File</source>
            <translation>&amp;Arquivo</translation>
        </message>
        <message>
            <source>&amp;Quit</source>
            <translation>&amp;Sair</translation>
        </message>
        <message>
            <source>The address to listen on; 0.0.0.0 means every network</source>
            <translation>O endereço em que escutar; 0.0.0.0 significa todas as redes</translation>
        </message>
        <message>
            <source>any free port</source>
            <translation>qualquer porta livre</translation>
        </message>
        <message>
            <source>Start</source>
            <translation>Iniciar</translation>
        </message>
        <message>
            <source>Filter peers by address or agent</source>
            <translation>Filtrar peers por endereço ou agente</translation>
        </message>
        <message>
            <source>Kick</source>
            <translation>Expulsar</translation>
        </message>
        <message>
            <source>Close the selected peers' connections and refuse their addresses for 10 minutes</source>
            <translation>Fechar as conexões dos peers selecionados e recusar os endereços deles por 10 minutos</translation>
        </message>
        <message>
            <source>Ban address…</source>
            <translation>Banir endereço…</translation>
        </message>
        <message>
            <source>Refuse every connection from the selected peers' addresses</source>
            <translation>Recusar toda conexão dos endereços dos peers selecionados</translation>
        </message>
        <message>
            <source>No peer is online yet. Peers appear here as soon as they connect and JOIN.</source>
            <translation>Nenhum peer online ainda. Os peers aparecem aqui assim que se conectam e fazem JOIN.</translation>
        </message>
        <message>
            <source>Select a peer to see the files it shares.</source>
            <translation>Selecione um peer para ver os arquivos que ele compartilha.</translation>
        </message>
        <message>
            <source>Search the index the way peers do: every word must appear in the name</source>
            <translation>Busque no índice como os peers fazem: toda palavra precisa aparecer no nome</translation>
        </message>
        <message>
            <source>Refresh</source>
            <translation>Atualizar</translation>
        </message>
        <message>
            <source>No files are indexed yet. Files appear here as peers JOIN and share them.</source>
            <translation>Nenhum arquivo indexado ainda. Os arquivos aparecem aqui quando os peers fazem JOIN e os compartilham.</translation>
        </message>
        <message>
            <source>IP address, e.g. 203.0.113.7</source>
            <translation>Endereço IP, por exemplo 203.0.113.7</translation>
        </message>
        <message>
            <source>Reason (optional)</source>
            <translation>Motivo (opcional)</translation>
        </message>
        <message>
            <source>Ban</source>
            <translation>Banir</translation>
        </message>
        <message>
            <source>Ban an address</source>
            <translation>Banir um endereço</translation>
        </message>
        <message>
            <source>No address is banned. Ban a peer from the Peers tab, or type an address above. Bans are kept in the index database and survive restarts; a kicked peer's address is refused for 10 minutes.</source>
            <translation>Nenhum endereço banido. Bana um peer na aba Peers ou digite um endereço acima. Os banimentos ficam no banco de dados do índice e sobrevivem a reinícios; o endereço de um peer expulso é recusado por 10 minutos.</translation>
        </message>
        <message>
            <source>Unban selected</source>
            <translation>Desbanir selecionados</translation>
        </message>
        <message>
            <source>The server is not listening, so no peer can connect. Press Start above.</source>
            <translation>O servidor não está escutando, então nenhum peer pode se conectar. Clique em Iniciar acima.</translation>
        </message>
        <message>
            <source>Every shared file of every online peer</source>
            <translation>Todos os arquivos compartilhados de todos os peers online</translation>
        </message>
        <message>
            <source>This peer shares no files.</source>
            <translation>Este peer não compartilha arquivos.</translation>
        </message>
        <message>
            <source>1 file in the index ({index}). Click a header to sort.</source>
            <translation>1 arquivo no índice ({index}). Clique num cabeçalho para ordenar.</translation>
        </message>
        <message>
            <source>{count} different files in the index ({index}). Click a header to sort.</source>
            <translation>{count} arquivos diferentes no índice ({index}). Clique num cabeçalho para ordenar.</translation>
        </message>
        <message>
            <source>Host</source>
            <translation>Host</translation>
        </message>
        <message>
            <source>Port</source>
            <translation>Porta</translation>
        </message>
        <message>
            <source>Stop</source>
            <translation>Parar</translation>
        </message>
        <message>
            <source>{count} online</source>
            <translation>{count} online</translation>
        </message>
        <message>
            <source>{address} ({agent}) shares {count} files, {size}</source>
            <translation>{address} ({agent}) compartilha {count} arquivos, {size}</translation>
        </message>
        <message>
            <source>Ban {addresses}?

Every connection from these addresses is closed now and refused from now on, also after a restart, until you unban them on the Bans tab.</source>
            <translation>Banir {addresses}?

Toda conexão destes endereços é fechada agora e recusada daqui em diante, também depois de um reinício, até você desbani-los na aba Banimentos.</translation>
        </message>
        <message>
            <source>Ban address</source>
            <translation>Banir endereço</translation>
        </message>
        <message>
            <source>{files} shared files from {peers} peers</source>
            <translation>{files} arquivos compartilhados por {peers} peers</translation>
        </message>
        <message>
            <source>Showing the first {count} matches ({index} in the index).</source>
            <translation>Mostrando os primeiros {count} resultados ({index} no índice).</translation>
        </message>
        <message>
            <source>Showing the first {count} names in alphabetical order ({index} in the index).</source>
            <translation>Mostrando os primeiros {count} nomes em ordem alfabética ({index} no índice).</translation>
        </message>
        <message>
            <source>Type more words to narrow the list.</source>
            <translation>Digite mais palavras para estreitar a lista.</translation>
        </message>
        <message>
            <source>1 file matches “{query}”. Click a header to sort.</source>
            <translation>1 arquivo corresponde a “{query}”. Clique num cabeçalho para ordenar.</translation>
        </message>
        <message>
            <source>{count} different files match “{query}”. Click a header to sort.</source>
            <translation>{count} arquivos diferentes correspondem a “{query}”. Clique num cabeçalho para ordenar.</translation>
        </message>
        <message>
            <source>Stopped: peers cannot connect. Press Start to listen.</source>
            <translation>Parado: os peers não podem se conectar. Clique em Iniciar para escutar.</translation>
        </message>
        <message>
            <source>{count} bytes</source>
            <translation>{count} bytes</translation>
        </message>
        <message>
            <source>{shown} of {total} online</source>
            <translation>{shown} de {total} online</translation>
        </message>
        <message>
            <source>no agent</source>
            <translation>sem agente</translation>
        </message>
        <message>
            <source> — showing the first {count}</source>
            <translation> — mostrando os primeiros {count}</translation>
        </message>
        <message>
            <source>Index database: {path}</source>
            <translation>Banco de dados do índice: {path}</translation>
        </message>
        <message>
            <source>Fingerprint: {fingerprint}</source>
            <translation>Impressão digital: {fingerprint}</translation>
        </message>
        <message>
            <source>The SHA-256 of this server's TLS certificate. Publish it beside the server's address: peers remember it when they first connect and refuse a server that presents another one.</source>
            <translation>O SHA-256 do certificado TLS deste servidor. Publique-o ao lado do endereço do servidor: os peers o guardam na primeira conexão e recusam um servidor que apresente outro.</translation>
        </message>
        <message>
            <source>Listening on {address}</source>
            <translation>Escutando em {address}</translation>
        </message>
        <message>
            <source>{title} (stopped)</source>
            <translation>{title} (parado)</translation>
        </message>
        <message>
            <source>No online peer matches “{text}”.</source>
            <translation>Nenhum peer online corresponde a “{text}”.</translation>
        </message>
        <message>
            <source>{address} has left; its files are no longer indexed.</source>
            <translation>{address} saiu; os arquivos dele não estão mais no índice.</translation>
        </message>
        <message>
            <source>No file name contains every word of “{query}”.</source>
            <translation>Nenhum nome de arquivo contém todas as palavras de “{query}”.</translation>
        </message>
        <message>
            <source>Port {port} is already in use on {host}: another server may be running. Choose another port, then press Start.</source>
            <translation>A porta {port} já está em uso em {host}: outro servidor pode estar rodando. Escolha outra porta e clique em Iniciar.</translation>
        </message>
        <message>
            <source>“{text}” is not an IP address.</source>
            <translation>“{text}” não é um endereço IP.</translation>
        </message>
        <message>
            <source>Not listening. {reason}</source>
            <translation>Não está escutando. {reason}</translation>
        </message>
        <message>
            <source>Online peers</source>
            <translation>Peers online</translation>
        </message>
        <message>
            <source>Files indexed</source>
            <translation>Arquivos indexados</translation>
        </message>
        <message>
            <source>Total shared</source>
            <translation>Total compartilhado</translation>
        </message>
        <message>
            <source>JOINs / min</source>
            <translation>JOINs / min</translation>
        </message>
        <message>
            <source>SEARCHes / min</source>
            <translation>SEARCHes / min</translation>
        </message>
        <message>
            <source>UPDATEs / min</source>
            <translation>UPDATEs / min</translation>
        </message>
        <message>
            <source>Protocol errors</source>
            <translation>Erros de protocolo</translation>
        </message>
        <message>
            <source>Refused connections</source>
            <translation>Conexões recusadas</translation>
        </message>
    </context>
    <context>
        <name>ConsoleMenu</name>
        <message>
            <source>Joined the index server at {server}.</source>
            <translation>Entrou no servidor de índice em {server}.</translation>
        </message>
        <message>
            <source>
Napster P2P
  1 JOIN      enter the network and share your folder
  2 SEARCH    find which peers have a file
  3 DOWNLOAD  download a file from a peer
  4 QUIT
</source>
            <translation>
Napster P2P
  1 JOIN      entrar na rede e compartilhar sua pasta
  2 SEARCH    descobrir quais peers têm um arquivo
  3 DOWNLOAD  baixar um arquivo de um peer
  4 QUIT      sair
</translation>
        </message>
        <message>
            <source>Unknown option {choice}: type 1, 2, 3 or 4.</source>
            <translation>Opção desconhecida {choice}: digite 1, 2, 3 ou 4.</translation>
        </message>
        <message>
            <source>Already in the network, sharing {folder}.</source>
            <translation>Já está na rede, compartilhando {folder}.</translation>
        </message>
        <message>
            <source>Index server [{server}]: </source>
            <translation>Servidor de índice [{server}]: </translation>
        </message>
        <message>
            <source>Not a server address: {reason}.</source>
            <translation>Endereço de servidor inválido: {reason}.</translation>
        </message>
        <message>
            <source>Shared folder [{folder}]: </source>
            <translation>Pasta compartilhada [{folder}]: </translation>
        </message>
        <message>
            <source>{folder} is not a folder.</source>
            <translation>{folder} não é uma pasta.</translation>
        </message>
        <message>
            <source>Hashing the files in {folder} ...</source>
            <translation>Calculando o hash dos arquivos em {folder} ...</translation>
        </message>
        <message>
            <source>I am peer {address} with files {names}</source>
            <translation>Sou peer {address} com arquivos {names}</translation>
        </message>
        <message>
            <source>JOIN first.</source>
            <translation>Faça JOIN primeiro.</translation>
        </message>
        <message>
            <source>File name: </source>
            <translation>Nome do arquivo: </translation>
        </message>
        <message>
            <source>peers with the requested file: {peers}</source>
            <translation>peers com arquivo solicitado: {peers}</translation>
        </message>
        <message>
            <source>No peer has a file with exactly that name.</source>
            <translation>Nenhum peer tem um arquivo com exatamente esse nome.</translation>
        </message>
        <message>
            <source>Other files that match:</source>
            <translation>Outros arquivos que correspondem:</translation>
        </message>
        <message>
            <source>  {name} ({size} bytes): {peers}</source>
            <translation>  {name} ({size} bytes): {peers}</translation>
        </message>
        <message>
            <source>Search failed: {reason}</source>
            <translation>A busca falhou: {reason}</translation>
        </message>
        <message>
            <source>SEARCH for that file first; no search result has that name.</source>
            <translation>Faça SEARCH por esse arquivo primeiro; nenhum resultado de busca tem esse nome.</translation>
        </message>
        <message>
            <source>Peer to download from [{peer}]: </source>
            <translation>Peer de onde baixar [{peer}]: </translation>
        </message>
        <message>
            <source>Not a peer address: {reason}.</source>
            <translation>Endereço de peer inválido: {reason}.</translation>
        </message>
        <message>
            <source>Downloading {name} ...</source>
            <translation>Baixando {name} ...</translation>
        </message>
        <message>
            <source>File {name} downloaded successfully to folder {folder}</source>
            <translation>Arquivo {name} baixado com sucesso na pasta {folder}</translation>
        </message>
        <message>
            <source>Download of {name} failed: {reason}</source>
            <translation>O download de {name} falhou: {reason}</translation>
        </message>
    </context>
    <context>
        <name>DownloadsModel</name>
        <message>
            <source>Name</source>
            <translation>Nome</translation>
        </message>
        <message>
            <source>Size</source>
            <translation>Tamanho</translation>
        </message>
        <message>
            <source>Progress</source>
            <translation>Progresso</translation>
        </message>
        <message>
            <source>Speed</source>
            <translation>Velocidade</translation>
        </message>
        <message>
            <source>Time left</source>
            <translation>Tempo restante</translation>
        </message>
        <message>
            <source>State</source>
            <translation>Estado</translation>
        </message>
        <message>
            <source>Sources</source>
            <translation>Fontes</translation>
        </message>
        <message>
            <source>{usable} of {total}</source>
            <translation>{usable} de {total}</translation>
        </message>
        <message>
            <source>{source} (sent bad data)</source>
            <translation>{source} (enviou dados corrompidos)</translation>
        </message>
        <message>
            <source>{source} (in use)</source>
            <translation>{source} (em uso)</translation>
        </message>
        <message>
            <source>No sources</source>
            <translation>Nenhuma fonte</translation>
        </message>
    </context>
    <context>
        <name>Format</name>
        <message>
            <source>{size}/s</source>
            <translation>{size}/s</translation>
        </message>
        <message>
            <source>{s} s</source>
            <translation>{s} s</translation>
        </message>
        <message>
            <source>{m} min {s:02d} s</source>
            <translation>{m} min {s:02d} s</translation>
        </message>
        <message>
            <source>{h} h {m:02d} min</source>
            <translation>{h} h {m:02d} min</translation>
        </message>
        <message>
            <source>{d} days</source>
            <translation>{d} dias</translation>
        </message>
        <message>
            <source>1 file</source>
            <translation>1 arquivo</translation>
        </message>
        <message>
            <source>{count} files</source>
            <translation>{count} arquivos</translation>
        </message>
        <message>
            <source>{done} of {total}</source>
            <translation>{done} de {total}</translation>
        </message>
        <message>
            <source>{percent} %</source>
            <translation>{percent} %</translation>
        </message>
    </context>
    <context>
        <name>MainWindow</name>
        <message>
            <source>Napster P2P</source>
            <extracomment>the window has stopped the peer (LEAVE sent, queue saved)</extracomment>
            <translation>Napster P2P</translation>
        </message>
        <message>
            <source>&amp;Add Files to Share…</source>
            <translation>&amp;Adicionar arquivos para compartilhar…</translation>
        </message>
        <message>
            <source>Copy files into the shared folder</source>
            <translation>Copiar arquivos para a pasta compartilhada</translation>
        </message>
        <message>
            <source>Open &amp;Shared Folder</source>
            <translation>Abrir pasta &amp;compartilhada</translation>
        </message>
        <message>
            <source>Open the shared folder</source>
            <translation>Abrir a pasta compartilhada</translation>
        </message>
        <message>
            <source>Open &amp;Download Folder</source>
            <translation>Abrir pasta de &amp;downloads</translation>
        </message>
        <message>
            <source>Open the folder downloads go to</source>
            <translation>Abrir a pasta onde ficam os downloads</translation>
        </message>
        <message>
            <source>S&amp;ettings…</source>
            <translation>Co&amp;nfigurações…</translation>
        </message>
        <message>
            <source>Server, folders, ports, language</source>
            <translation>Servidor, pastas, portas, idioma</translation>
        </message>
        <message>
            <source>&amp;Quit</source>
            <translation>&amp;Sair</translation>
        </message>
        <message>
            <source>Leave the network and quit</source>
            <translation>Sair da rede e fechar</translation>
        </message>
        <message>
            <source>&amp;Search</source>
            <translation>&amp;Pesquisar</translation>
        </message>
        <message>
            <source>&amp;Transfers</source>
            <translation>&amp;Transferências</translation>
        </message>
        <message>
            <source>Shared &amp;Files</source>
            <translation>Arquivos &amp;compartilhados</translation>
        </message>
        <message>
            <source>&amp;Find…</source>
            <translation>&amp;Localizar…</translation>
        </message>
        <message>
            <source>Type a new search</source>
            <translation>Digitar uma nova pesquisa</translation>
        </message>
        <message>
            <source>&amp;Download</source>
            <translation>&amp;Baixar</translation>
        </message>
        <message>
            <source>Download the selected search results</source>
            <translation>Baixar os resultados selecionados</translation>
        </message>
        <message>
            <source>&amp;Pause</source>
            <translation>&amp;Pausar</translation>
        </message>
        <message>
            <source>Pause the selected downloads</source>
            <translation>Pausar os downloads selecionados</translation>
        </message>
        <message>
            <source>&amp;Resume</source>
            <translation>&amp;Retomar</translation>
        </message>
        <message>
            <source>Resume the selected downloads</source>
            <translation>Retomar os downloads selecionados</translation>
        </message>
        <message>
            <source>&amp;Cancel</source>
            <translation>&amp;Cancelar</translation>
        </message>
        <message>
            <source>Cancel the selected downloads</source>
            <translation>Cancelar os downloads selecionados</translation>
        </message>
        <message>
            <source>Re&amp;try</source>
            <translation>&amp;Tentar de novo</translation>
        </message>
        <message>
            <source>Try the selected failed downloads again</source>
            <translation>Tentar de novo os downloads que falharam</translation>
        </message>
        <message>
            <source>&amp;Open</source>
            <translation>&amp;Abrir</translation>
        </message>
        <message>
            <source>Open the downloaded file</source>
            <translation>Abrir o arquivo baixado</translation>
        </message>
        <message>
            <source>Show in &amp;Folder</source>
            <translation>Mostrar na &amp;pasta</translation>
        </message>
        <message>
            <source>Open the folder that holds the file</source>
            <translation>Abrir a pasta que contém o arquivo</translation>
        </message>
        <message>
            <source>C&amp;lear Finished</source>
            <translation>&amp;Limpar concluídos</translation>
        </message>
        <message>
            <source>Remove finished downloads from the list (the files stay)</source>
            <translation>Tirar da lista os downloads concluídos (os arquivos ficam)</translation>
        </message>
        <message>
            <source>&amp;About Napster P2P</source>
            <translation>&amp;Sobre o Napster P2P</translation>
        </message>
        <message>
            <source>Open</source>
            <translation>Abrir</translation>
        </message>
        <message>
            <source>Show in Folder</source>
            <translation>Mostrar na pasta</translation>
        </message>
        <message>
            <source>Add Files</source>
            <translation>Adicionar</translation>
        </message>
        <message>
            <source>Shared Folder</source>
            <translation>Pasta compartilhada</translation>
        </message>
        <message>
            <source>Settings</source>
            <translation>Configurações</translation>
        </message>
        <message>
            <source>&amp;File</source>
            <translation>&amp;Arquivo</translation>
        </message>
        <message>
            <source>&amp;View</source>
            <translation>&amp;Exibir</translation>
        </message>
        <message>
            <source>&amp;Help</source>
            <translation>Aj&amp;uda</translation>
        </message>
        <message>
            <source>Toolbar</source>
            <translation>Barra de ferramentas</translation>
        </message>
        <message>
            <source>Show &amp;Toolbar</source>
            <translation>Mostrar barra de &amp;ferramentas</translation>
        </message>
        <message>
            <source>Show Window</source>
            <translation>Mostrar janela</translation>
        </message>
        <message>
            <source>Quit</source>
            <translation>Sair</translation>
        </message>
        <message>
            <source>Search</source>
            <translation>Pesquisar</translation>
        </message>
        <message>
            <source>Transfers ({count})</source>
            <translation>Transferências ({count})</translation>
        </message>
        <message>
            <source>Transfers</source>
            <translation>Transferências</translation>
        </message>
        <message>
            <source>Shared files ({count})</source>
            <translation>Arquivos compartilhados ({count})</translation>
        </message>
        <message>
            <source>Shared files</source>
            <translation>Arquivos compartilhados</translation>
        </message>
        <message>
            <source>Port {wanted} is in use; other peers reach you on port {port}.</source>
            <translation>A porta {wanted} está em uso; outros peers acessam você pela porta {port}.</translation>
        </message>
        <message>
            <source>Downloaded</source>
            <translation>Baixado</translation>
        </message>
        <message>
            <source>Downloading {percent}</source>
            <translation>Baixando {percent}</translation>
        </message>
        <message>
            <source>In your shared files</source>
            <translation>Nos seus compartilhados</translation>
        </message>
        <message>
            <source>Downloading {name}</source>
            <translation>Baixando {name}</translation>
        </message>
        <message>
            <source>Downloading {count} files</source>
            <translation>Baixando {count} arquivos</translation>
        </message>
        <message>
            <source>Already downloaded: {name}</source>
            <translation>Já baixado: {name}</translation>
        </message>
        <message>
            <source>Download finished</source>
            <translation>Download concluído</translation>
        </message>
        <message>
            <source>{name} is in {folder}</source>
            <translation>{name} está em {folder}</translation>
        </message>
        <message>
            <source>Download of {name} failed: {reason}</source>
            <translation>O download de {name} falhou: {reason}</translation>
        </message>
        <message>
            <source>Clear Finished Uploads</source>
            <translation>Limpar envios concluídos</translation>
        </message>
        <message>
            <source>Cancel Copy</source>
            <translation>Cancelar cópia</translation>
        </message>
        <message>
            <source>Clear Failed</source>
            <translation>Limpar falhas</translation>
        </message>
        <message>
            <source>Could not copy {name}: {reason}</source>
            <translation>Não foi possível copiar {name}: {reason}</translation>
        </message>
        <message>
            <source>Folder not usable</source>
            <translation>Pasta inutilizável</translation>
        </message>
        <message>
            <source>The folder could not be used: {reason}</source>
            <translation>Não foi possível usar a pasta: {reason}</translation>
        </message>
        <message>
            <source>The new listen port {port} is used after a restart.</source>
            <translation>A nova porta {port} passa a valer depois de reiniciar.</translation>
        </message>
    </context>
    <context>
        <name>Prompts</name>
    <message>
        <source>Index server identity changed</source>
        <translation>A identidade do servidor de índice mudou</translation>
    </message>
    <message>
        <source>The index server at {server} presented another identity than the one remembered. Napster P2P did not connect to it.</source>
        <translation>O servidor de índice em {server} apresentou uma identidade diferente da lembrada. O Napster P2P não se conectou a ele.</translation>
    </message>
    <message>
        <source>Another machine may be answering at that address. Trust the new identity only if the server's operator says it changed.

Remembered: {known}
Presented: {presented}</source>
        <translation>Outra máquina pode estar respondendo nesse endereço. Confie na nova identidade somente se o operador do servidor disser que ela mudou.

Lembrada: {known}
Apresentada: {presented}</translation>
    </message>
    <message>
        <source>Trust the new identity</source>
        <translation>Confiar na nova identidade</translation>
    </message>
    <message>
        <source>Keep refusing</source>
        <translation>Continuar recusando</translation>
    </message>
        <message>
            <source>Quit Napster P2P?</source>
            <translation>Sair do Napster P2P?</translation>
        </message>
        <message>
            <source>{count} downloads are running.</source>
            <translation>{count} downloads em andamento.</translation>
        </message>
        <message>
            <source>{count} peers are downloading from you.</source>
            <translation>{count} peers estão baixando de você.</translation>
        </message>
        <message>
            <source>{count} files are still being copied.</source>
            <translation>{count} arquivos ainda estão sendo copiados.</translation>
        </message>
        <message>
            <source>Unfinished downloads resume the next time you start the app.</source>
            <translation>Downloads inacabados continuam na próxima vez que você abrir o app.</translation>
        </message>
        <message>
            <source>Quit</source>
            <translation>Sair</translation>
        </message>
        <message>
            <source>Keep running</source>
            <translation>Continuar aberto</translation>
        </message>
        <message>
            <source>Cancel downloads?</source>
            <translation>Cancelar downloads?</translation>
        </message>
        <message>
            <source>Cancel the download of “{name}”?</source>
            <translation>Cancelar o download de “{name}”?</translation>
        </message>
        <message>
            <source>Cancel {count} downloads?</source>
            <translation>Cancelar {count} downloads?</translation>
        </message>
        <message>
            <source>The part already downloaded can be deleted, or kept so that downloading the same file again continues where it stopped.</source>
            <translation>A parte já baixada pode ser apagada, ou mantida para que baixar o mesmo arquivo de novo continue de onde parou.</translation>
        </message>
        <message>
            <source>Cancel and delete</source>
            <translation>Cancelar e apagar</translation>
        </message>
        <message>
            <source>Cancel, keep the part</source>
            <translation>Cancelar, manter a parte</translation>
        </message>
        <message>
            <source>Keep downloading</source>
            <translation>Continuar baixando</translation>
        </message>
        <message>
            <source>Choose files to share</source>
            <translation>Escolha arquivos para compartilhar</translation>
        </message>
        <message>
            <source>About Napster P2P</source>
            <translation>Sobre o Napster P2P</translation>
        </message>
        <message>
            <source>Napster P2P {version}

Find files through an index server and download them straight from other peers, every piece verified.</source>
            <translation>Napster P2P {version}

Encontre arquivos por meio de um servidor de índice e baixe-os direto de outros peers, com cada parte verificada.</translation>
        </message>
    </context>
    <context>
        <name>SearchPage</name>
        <message>
            <source>Searching for “{query}”…</source>
            <extracomment>the results the user asked to download</extracomment>
            <translation>Pesquisando “{query}”…</translation>
        </message>
        <message>
            <source>The search did not reach the server. Check the status bar below.</source>
            <translation>A pesquisa não chegou ao servidor. Veja a barra de status abaixo.</translation>
        </message>
        <message>
            <source>No peer shares a file matching “{query}”.
Every word must appear in the name: try fewer or shorter words.</source>
            <translation>Nenhum peer compartilha um arquivo que corresponda a “{query}”.
Todas as palavras precisam aparecer no nome: tente menos palavras ou palavras mais curtas.</translation>
        </message>
        <message>
            <source>Find files shared by other peers.
Type part of a name (for example: aula mp4) and press Enter.
Double-click a result to download it.</source>
            <translation>Encontre arquivos compartilhados por outros peers.
Digite parte de um nome (por exemplo: aula mp4) e tecle Enter.
Clique duas vezes em um resultado para baixá-lo.</translation>
        </message>
        <message>
            <source>Search for files, e.g. aula mp4</source>
            <translation>Pesquisar arquivos, por exemplo aula mp4</translation>
        </message>
        <message>
            <source>Search</source>
            <translation>Pesquisar</translation>
        </message>
        <message>
            <source>Download</source>
            <translation>Baixar</translation>
        </message>
        <message>
            <source>Download the selected files from every source</source>
            <translation>Baixar os arquivos selecionados de todas as fontes</translation>
        </message>
        <message>
            <source>1 result</source>
            <translation>1 resultado</translation>
        </message>
        <message>
            <source>{count} results</source>
            <translation>{count} resultados</translation>
        </message>
        <message>
            <source>Type a file name or part of one to search.</source>
            <translation>Digite um nome de arquivo, ou parte dele, para pesquisar.</translation>
        </message>
    </context>
    <context>
        <name>SearchResultsModel</name>
        <message>
            <source>Name</source>
            <translation>Nome</translation>
        </message>
        <message>
            <source>Size</source>
            <translation>Tamanho</translation>
        </message>
        <message>
            <source>Sources</source>
            <translation>Fontes</translation>
        </message>
        <message>
            <source>Status</source>
            <translation>Situação</translation>
        </message>
        <message>
            <source>{count} bytes</source>
            <translation>{count} bytes</translation>
        </message>
    </context>
    <context>
        <name>SettingsDialog</name>
        <message>
            <source>Welcome to Napster P2P</source>
            <translation>Bem-vindo ao Napster P2P</translation>
        </message>
        <message>
            <source>Settings</source>
            <translation>Configurações</translation>
        </message>
        <message>
            <source>Napster P2P finds files through an index server and downloads them straight from other peers. Say which server to use, which folder you share and where downloads go. You can change all of this later in Settings.</source>
            <translation>O Napster P2P encontra arquivos por meio de um servidor de índice e os baixa direto de outros peers. Informe qual servidor usar, qual pasta você compartilha e para onde vão os downloads. Você pode mudar tudo isso depois em Configurações.</translation>
        </message>
        <message>
            <source>Network and folders</source>
            <translation>Rede e pastas</translation>
        </message>
        <message>
            <source>Index servers:</source>
            <translation>Servidores de índice:</translation>
        </message>
        <message>
            <source>One server a line: host name or address and port, e.g. 127.0.0.1:1099. With several, the peer uses one and moves to another when it is lost.</source>
            <translation>Um servidor por linha: nome ou endereço do host e porta, por exemplo 127.0.0.1:1099. Com vários, o peer usa um e passa para outro quando perde a conexão.</translation>
        </message>
        <message>
            <source>Shared folder:</source>
            <translation>Pasta compartilhada:</translation>
        </message>
        <message>
            <source>Download folder:</source>
            <translation>Pasta de downloads:</translation>
        </message>
        <message>
            <source>Browse…</source>
            <translation>Procurar…</translation>
        </message>
        <message>
            <source>Choose a folder</source>
            <translation>Escolha uma pasta</translation>
        </message>
        <message>
            <source>Transfers and interface</source>
            <translation>Transferências e interface</translation>
        </message>
        <message>
            <source>Listen port:</source>
            <translation>Porta de escuta:</translation>
        </message>
        <message>
            <source>any free port</source>
            <translation>qualquer porta livre</translation>
        </message>
        <message>
            <source>Other peers download from this port. A new port is used after a restart.</source>
            <translation>Outros peers baixam por esta porta. Uma nova porta passa a valer depois de reiniciar.</translation>
        </message>
        <message>
            <source>Upload slots:</source>
            <translation>Vagas de envio:</translation>
        </message>
        <message>
            <source>Downloads at a time:</source>
            <translation>Downloads simultâneos:</translation>
        </message>
        <message>
            <source>Language:</source>
            <translation>Idioma:</translation>
        </message>
        <message>
            <source>System default</source>
            <translation>Padrão do sistema</translation>
        </message>
        <message>
            <source>Notify me when a download finishes</source>
            <translation>Avisar quando um download terminar</translation>
        </message>
        <message>
            <source>Start</source>
            <translation>Começar</translation>
        </message>
        <message>
            <source>OK</source>
            <translation>OK</translation>
        </message>
        <message>
            <source>Quit</source>
            <translation>Sair</translation>
        </message>
        <message>
            <source>Cancel</source>
            <translation>Cancelar</translation>
        </message>
        <message>
            <source>The server address is not valid: {reason}.</source>
            <translation>O endereço do servidor não é válido: {reason}.</translation>
        </message>
        <message>
            <source>Choose a folder for “{field}”.</source>
            <translation>Escolha uma pasta para “{field}”.</translation>
        </message>
        <message>
            <source>“{path}” is not a full folder path.</source>
            <translation>“{path}” não é um caminho completo de pasta.</translation>
        </message>
    </context>
    <context>
        <name>SharedFilesModel</name>
        <message>
            <source>Name</source>
            <translation>Nome</translation>
        </message>
        <message>
            <source>Size</source>
            <translation>Tamanho</translation>
        </message>
        <message>
            <source>Folder</source>
            <translation>Pasta</translation>
        </message>
        <message>
            <source>State</source>
            <translation>Estado</translation>
        </message>
        <message>
            <source>Waiting to copy</source>
            <translation>Aguardando cópia</translation>
        </message>
        <message>
            <source>Copying {percent}</source>
            <translation>Copiando {percent}</translation>
        </message>
        <message>
            <source>Waiting to be hashed</source>
            <translation>Aguardando verificação</translation>
        </message>
        <message>
            <source>Hashing…</source>
            <translation>Calculando hash…</translation>
        </message>
        <message>
            <source>Not shared: {reason}</source>
            <translation>Não compartilhado: {reason}</translation>
        </message>
        <message>
            <source>Shared</source>
            <translation>Compartilhado</translation>
        </message>
    </context>
    <context>
        <name>SharedPage</name>
        <message>
            <source>Sharing {folder}</source>
            <translation>Compartilhando {folder}</translation>
        </message>
        <message>
            <source>Your downloads in {folder} are shared too.</source>
            <translation>Seus downloads em {folder} também são compartilhados.</translation>
        </message>
        <message>
            <source>Add files…</source>
            <translation>Adicionar arquivos…</translation>
        </message>
        <message>
            <source>Copy files into the shared folder</source>
            <translation>Copiar arquivos para a pasta compartilhada</translation>
        </message>
        <message>
            <source>Open shared folder</source>
            <translation>Abrir pasta compartilhada</translation>
        </message>
        <message>
            <source>Filter by name</source>
            <translation>Filtrar por nome</translation>
        </message>
        <message>
            <source>You are not sharing any files yet.

Drag files or folders here from your desktop or file manager,
or click “Add files…”. They are copied into your shared folder,
checked, and offered to other peers.</source>
            <translation>Você ainda não compartilha nenhum arquivo.

Arraste para cá arquivos ou pastas da área de trabalho ou do gerenciador de arquivos,
ou clique em “Adicionar arquivos…”. Eles são copiados para a sua pasta compartilhada,
verificados e oferecidos a outros peers.</translation>
        </message>
        <message>
            <source>Drop files anywhere on this window to share them.</source>
            <translation>Solte arquivos em qualquer lugar desta janela para compartilhá-los.</translation>
        </message>
    </context>
    <context>
        <name>StatusArea</name>
    <message>
        <source>Behind a firewall: sharing through push</source>
        <translation>Atrás de um firewall: compartilhando por push</translation>
    </message>
    <message>
        <source>Refused {server}: its identity changed</source>
        <translation>{server} recusado: a identidade dele mudou</translation>
    </message>
    <message>
        <source>Other peers can reach you</source>
        <translation>Acessível a outros peers</translation>
    </message>
    <message>
        <source>You are behind a firewall or router: others can still download from you through the server's push</source>
        <translation>Você está atrás de um firewall ou roteador: outros ainda podem baixar de você pelo push do servidor</translation>
    </message>
    <message>
        <source>Not connected to {server}: it presented another identity than the one remembered (another machine may be answering at that address)</source>
        <translation>Não conectado a {server}: ele apresentou uma identidade diferente da lembrada (outra máquina pode estar respondendo nesse endereço)</translation>
    </message>
        <message>
            <source>No index server reachable, retrying in {seconds} s</source>
            <translation>Nenhum servidor de índice acessível, tentando de novo em {seconds} s</translation>
        </message>
        <message>
            <source>Index servers: {servers}</source>
            <translation>Servidores de índice: {servers}</translation>
        </message>
        <message>
            <source>Connected to {server} · sharing {files} ({size})</source>
            <translation>Conectado a {server} · compartilhando {files} ({size})</translation>
        </message>
        <message>
            <source>Server unreachable, trying again now…</source>
            <translation>Servidor inacessível, tentando de novo agora…</translation>
        </message>
        <message>
            <source>Connecting to {server}…</source>
            <translation>Conectando a {server}…</translation>
        </message>
        <message>
            <source>Joining {server}…</source>
            <translation>Entrando em {server}…</translation>
        </message>
        <message>
            <source>Server unreachable, retrying in {seconds} s</source>
            <translation>Servidor inacessível, nova tentativa em {seconds} s</translation>
        </message>
        <message>
            <source>Offline</source>
            <translation>Desconectado</translation>
        </message>
        <message>
            <source>Copying {name} ({done} of {total})</source>
            <translation>Copiando {name} ({done} de {total})</translation>
        </message>
        <message>
            <source>+{count} more</source>
            <translation>+{count} na fila</translation>
        </message>
        <message>
            <source>Hashing {current} of {total} files…</source>
            <translation>Calculando hash: {current} de {total} arquivos…</translation>
        </message>
        <message>
            <source>Looking for new files in the shared folder…</source>
            <translation>Procurando arquivos novos na pasta compartilhada…</translation>
        </message>
        <message>
            <source>Down {down} · Up {up}</source>
            <translation>Recebendo {down} · Enviando {up}</translation>
        </message>
        <message>
            <source>0 B/s</source>
            <translation>0 B/s</translation>
        </message>
    </context>
    <context>
        <name>Transfers</name>
        <message>
            <source>Waiting to retry in {time}</source>
            <extracomment>float 0..1 for the progress delegate, or None when the row has no progress to show the row's key: a SearchResult, a transfer id, an upload id or a shared-file key</extracomment>
            <translation>Nova tentativa em {time}</translation>
        </message>
        <message>
            <source>unknown error</source>
            <translation>erro desconhecido</translation>
        </message>
        <message>
            <source>Failed: {reason}</source>
            <translation>Falhou: {reason}</translation>
        </message>
        <message>
            <source>Queued</source>
            <translation>Na fila</translation>
        </message>
        <message>
            <source>Connecting</source>
            <translation>Conectando</translation>
        </message>
        <message>
            <source>Verifying</source>
            <translation>Verificando</translation>
        </message>
        <message>
            <source>Downloading</source>
            <translation>Baixando</translation>
        </message>
        <message>
            <source>Paused</source>
            <translation>Pausado</translation>
        </message>
        <message>
            <source>Done</source>
            <translation>Concluído</translation>
        </message>
    </context>
    <context>
        <name>TransfersPage</name>
        <message>
            <source>Downloads ({count})</source>
            <translation>Downloads ({count})</translation>
        </message>
        <message>
            <source>Downloads</source>
            <translation>Downloads</translation>
        </message>
        <message>
            <source>Uploads ({count})</source>
            <translation>Envios ({count})</translation>
        </message>
        <message>
            <source>Uploads</source>
            <translation>Envios</translation>
        </message>
        <message>
            <source>Nothing is downloading.
Search for a file and double-click it: it shows up here with its progress.</source>
            <translation>Nada está sendo baixado.
Pesquise um arquivo e clique duas vezes nele: ele aparece aqui com o progresso.</translation>
        </message>
        <message>
            <source>Nobody is downloading from you right now.
Other peers can download every file on the Shared files page.</source>
            <translation>Ninguém está baixando de você agora.
Outros peers podem baixar todos os arquivos da página Arquivos compartilhados.</translation>
        </message>
    </context>
    <context>
        <name>UploadsModel</name>
        <message>
            <source>Name</source>
            <translation>Nome</translation>
        </message>
        <message>
            <source>Peer</source>
            <translation>Peer</translation>
        </message>
        <message>
            <source>Progress</source>
            <translation>Progresso</translation>
        </message>
        <message>
            <source>Sent</source>
            <translation>Enviado</translation>
        </message>
        <message>
            <source>Speed</source>
            <translation>Velocidade</translation>
        </message>
        <message>
            <source>State</source>
            <translation>Estado</translation>
        </message>
        <message>
            <source>Failed: {reason}</source>
            <translation>Falhou: {reason}</translation>
        </message>
        <message>
            <source>Done</source>
            <translation>Concluído</translation>
        </message>
        <message>
            <source>Uploading</source>
            <translation>Enviando</translation>
        </message>
    </context>
    <context>
        <name>Problems</name>
        <message>
            <source>No peer has this file right now.</source>
            <translation>Nenhum peer tem este arquivo agora.</translation>
        </message>
        <message>
            <source>Every source sent corrupt data; none is trusted for this file.</source>
            <translation>Todas as fontes enviaram dados corrompidos; nenhuma é confiável para este arquivo.</translation>
        </message>
        <message>
            <source>Every source failed ({detail}).</source>
            <translation>Todas as fontes falharam ({detail}).</translation>
        </message>
        <message>
            <source>The download folder {folder} does not exist. Create it or choose another one in Settings, then resume.</source>
            <translation>A pasta de downloads {folder} não existe. Crie-a ou escolha outra em Configurações e depois retome.</translation>
        </message>
        <message>
            <source>The download folder {folder} is on a read-only file system. Choose a writable folder in Settings, then resume.</source>
            <translation>A pasta de downloads {folder} está em um sistema de arquivos somente leitura. Escolha uma pasta gravável em Configurações e depois retome.</translation>
        </message>
        <message>
            <source>Cannot write in the download folder {folder} ({error}). Give yourself write permission or choose another folder in Settings, then resume.</source>
            <translation>Não é possível gravar na pasta de downloads {folder} ({error}). Dê a si mesmo permissão de escrita ou escolha outra pasta em Configurações e depois retome.</translation>
        </message>
        <message>
            <source>The disk is full: {folder} has no space left. Free some space and resume; the part already downloaded is kept.</source>
            <translation>O disco está cheio: {folder} não tem mais espaço. Libere espaço e retome; a parte já baixada é mantida.</translation>
        </message>
        <message>
            <source>Not enough free disk space in {folder}: the file needs {needed} more, {free} is free.</source>
            <translation>Espaço livre insuficiente em {folder}: o arquivo precisa de mais {needed}, há {free} livres.</translation>
        </message>
        <message>
            <source>Cannot write the file: {error}.</source>
            <translation>Não é possível gravar o arquivo: {error}.</translation>
        </message>
        <message>
            <source>Could not find a free name for the finished file.</source>
            <translation>Não foi possível encontrar um nome livre para o arquivo concluído.</translation>
        </message>
        <message>
            <source>Unexpected error: {error}</source>
            <translation>Erro inesperado: {error}</translation>
        </message>
    </context>
    <context>
        <name>MainWindow</name>
        <message>
            <source>Folder problem</source>
            <translation>Problema de pasta</translation>
        </message>
    </context>
    <context>
        <name>ConsoleMenu</name>
        <message>
            <source>{count} download(s) running; they resume the next time you start. Quit now? [y/N] </source>
            <translation>{count} download(s) em andamento; eles continuam na próxima vez que você iniciar. Sair agora? [s/N] </translation>
        </message>
    </context>
    <context>
        <name>MainWindow</name>
        <message>
            <source>Det&amp;ails…</source>
            <translation>Det&amp;alhes…</translation>
        </message>
        <message>
            <source>Show the selected result's size, hash and every source's address</source>
            <translation>Mostrar o tamanho, o hash e o endereço de cada fonte do resultado selecionado</translation>
        </message>
        <message>
            <source>Copy Source &amp;Addresses</source>
            <translation>Copiar &amp;endereços das fontes</translation>
        </message>
        <message>
            <source>Copy the host:port of every peer sharing the selected results</source>
            <translation>Copiar o host:porta de cada peer que compartilha os resultados selecionados</translation>
        </message>
        <message>
            <source>Alternative Speed &amp;Limits</source>
            <translation>&amp;Limites de velocidade alternativos</translation>
        </message>
        <message>
            <source>Switch to the alternative speed limits set in Settings</source>
            <translation>Usar os limites de velocidade alternativos definidos nas Configurações</translation>
        </message>
        <message>
            <source>Alternative Limits</source>
            <translation>Limites alt.</translation>
        </message>
        <message>
            <source>Addresses copied: {count}</source>
            <translation>Endereços copiados: {count}</translation>
        </message>
    </context>
    <context>
        <name>ResultDetailsDialog</name>
        <message>
            <source>{size} ({bytes} bytes)</source>
            <translation>{size} ({bytes} bytes)</translation>
        </message>
        <message>
            <source>Search result details</source>
            <translation>Detalhes do resultado</translation>
        </message>
        <message>
            <source>Name:</source>
            <translation>Nome:</translation>
        </message>
        <message>
            <source>Size:</source>
            <translation>Tamanho:</translation>
        </message>
        <message>
            <source>Hash (BLAKE3):</source>
            <translation>Hash (BLAKE3):</translation>
        </message>
        <message>
            <source>Sources ({count}):</source>
            <translation>Fontes ({count}):</translation>
        </message>
        <message>
            <source>The address and port of every peer sharing this file</source>
            <translation>O endereço e a porta de cada peer que compartilha este arquivo</translation>
        </message>
        <message>
            <source>Copy Addresses</source>
            <translation>Copiar endereços</translation>
        </message>
        <message>
            <source>Close</source>
            <translation>Fechar</translation>
        </message>
    </context>
    <context>
        <name>SearchPage</name>
        <message>
            <source>Connected to the server again. Press Enter to search for “{query}”.</source>
            <translation>Conectado ao servidor de novo. Pressione Enter para pesquisar “{query}”.</translation>
        </message>
        <message>
            <source>Show more</source>
            <translation>Mostrar mais</translation>
        </message>
        <message>
            <source>Ask the server again for up to {count} results</source>
            <translation>Pedir ao servidor de novo até {count} resultados</translation>
        </message>
        <message>
            <source>Showing the first {count} results; more match: add words to narrow the search.</source>
            <translation>Mostrando os primeiros {count} resultados; há mais: acrescente palavras para refinar a pesquisa.</translation>
        </message>
        <message>
            <source>Showing the first {count} results; more match.</source>
            <translation>Mostrando os primeiros {count} resultados; há mais.</translation>
        </message>
    </context>
    <context>
        <name>SearchResultsModel</name>
        <message>
            <source>…and {count} more</source>
            <translation>…e mais {count}</translation>
        </message>
    </context>
    <context>
        <name>SettingsDialog</name>
        <message>
            <source>now listening on port {port}</source>
            <translation>escutando agora na porta {port}</translation>
        </message>
        <message>
            <source>The port other peers reach you on now. It differs from the saved one when that port was busy or set to any free port.</source>
            <translation>A porta pela qual os outros peers chegam até você agora. Ela difere da salva quando aquela porta estava ocupada ou definida como qualquer porta livre.</translation>
        </message>
        <message>
            <source>Speed limits</source>
            <translation>Limites de velocidade</translation>
        </message>
        <message>
            <source>Usual</source>
            <translation>Normal</translation>
        </message>
        <message>
            <source>Alternative</source>
            <translation>Alternativo</translation>
        </message>
        <message>
            <source>Upload:</source>
            <translation>Envio:</translation>
        </message>
        <message>
            <source>Download:</source>
            <translation>Download:</translation>
        </message>
        <message>
            <source>Blank or 0 means no limit. The toolbar's “Alternative Speed Limits” button switches between the two; limits apply at once.</source>
            <translation>Em branco ou 0 significa sem limite. O botão “Limites de velocidade alternativos” da barra de ferramentas alterna entre os dois; os limites valem na hora.</translation>
        </message>
        <message>
            <source>no limit</source>
            <translation>sem limite</translation>
        </message>
        <message>
            <source>Index server: {reason}</source>
            <translation>Servidor de índice: {reason}</translation>
        </message>
        <message>
            <source>Speed limit for “{field}”: {reason}</source>
            <translation>Limite de velocidade de “{field}”: {reason}</translation>
        </message>
    </context>
    <context>
        <name>StatusArea</name>
        <message>
            <source>Session: {down} down, {up} up</source>
            <translation>Sessão: {down} recebidos, {up} enviados</translation>
        </message>
        <message>
            <source>down {rate}</source>
            <translation>download {rate}</translation>
        </message>
        <message>
            <source>up {rate}</source>
            <translation>envio {rate}</translation>
        </message>
        <message>
            <source>Alternative speed limits: none set</source>
            <translation>Limites alternativos: nenhum definido</translation>
        </message>
        <message>
            <source>Alternative speed limits: {limits}</source>
            <translation>Limites alternativos: {limits}</translation>
        </message>
        <message>
            <source>Speed limit: {limits}</source>
            <translation>Limite: {limits}</translation>
        </message>
        <message>
            <source>Bytes downloaded and uploaded since the app started</source>
            <translation>Bytes baixados e enviados desde que o aplicativo foi aberto</translation>
        </message>
        <message>
            <source>Change the limits in Settings; the toolbar switches to the alternative ones</source>
            <translation>Altere os limites nas Configurações; a barra de ferramentas alterna para os alternativos</translation>
        </message>
    </context>
    <context>
        <name>UploadsModel</name>
        <message>
            <source>Size</source>
            <translation>Tamanho</translation>
        </message>
        <message>
            <source>Finished</source>
            <translation>Concluído</translation>
        </message>
        <message>
            <source>Idle</source>
            <translation>Ocioso</translation>
        </message>
        <message>
            <source>{received} of the file's {size} sent to this peer; {sent} in total over {requests} requests</source>
            <translation>{received} dos {size} do arquivo enviados a este peer; {sent} no total em {requests} pedidos</translation>
        </message>
    </context>
    <context>
        <name>Validation</name>
        <message>
            <source>Line {line}: {reason}</source>
            <translation>Linha {line}: {reason}</translation>
        </message>
        <message>
            <source>Write the port number after the colon, e.g. {example}.</source>
            <translation>Escreva o número da porta depois dos dois-pontos, por exemplo {example}.</translation>
        </message>
        <message>
            <source>“{port}” is not a port number (1 to 65535).</source>
            <translation>“{port}” não é um número de porta (1 a 65535).</translation>
        </message>
        <message>
            <source>Port {port} is outside 1 to 65535.</source>
            <translation>A porta {port} está fora de 1 a 65535.</translation>
        </message>
        <message>
            <source>“{host}” is not a valid IPv4 address.</source>
            <translation>“{host}” não é um endereço IPv4 válido.</translation>
        </message>
        <message>
            <source>“{char}” cannot be part of a server address. Separate the port with a colon, e.g. {example}.</source>
            <translation>“{char}” não pode fazer parte do endereço de um servidor. Separe a porta com dois-pontos, por exemplo {example}.</translation>
        </message>
        <message>
            <source>“{char}” cannot be part of a server address.</source>
            <translation>“{char}” não pode fazer parte do endereço de um servidor.</translation>
        </message>
        <message>
            <source>The host name is too long.</source>
            <translation>O nome do host é longo demais.</translation>
        </message>
        <message>
            <source>“{host}” is not a valid host name.</source>
            <translation>“{host}” não é um nome de host válido.</translation>
        </message>
        <message>
            <source>Type the server's address, e.g. {example}.</source>
            <translation>Digite o endereço do servidor, por exemplo {example}.</translation>
        </message>
        <message>
            <source>The IPv6 address has no closing “]”, e.g. {example}.</source>
            <translation>Falta o “]” que fecha o endereço IPv6, por exemplo {example}.</translation>
        </message>
        <message>
            <source>“{host}” is not a valid IPv6 address.</source>
            <translation>“{host}” não é um endereço IPv6 válido.</translation>
        </message>
        <message>
            <source>Write the port after a colon, e.g. {example}.</source>
            <translation>Escreva a porta depois de dois-pontos, por exemplo {example}.</translation>
        </message>
        <message>
            <source>Put an IPv6 address in brackets, e.g. {example}.</source>
            <translation>Coloque o endereço IPv6 entre colchetes, por exemplo {example}.</translation>
        </message>
        <message>
            <source>There is no host name before the colon, e.g. {example}.</source>
            <translation>Não há nome de host antes dos dois-pontos, por exemplo {example}.</translation>
        </message>
        <message>
            <source>“{text}” is not a number.</source>
            <translation>“{text}” não é um número.</translation>
        </message>
        <message>
            <source>A speed limit cannot be negative (0 means no limit).</source>
            <translation>Um limite de velocidade não pode ser negativo (0 significa sem limite).</translation>
        </message>
        <message>
            <source>That speed limit is too high.</source>
            <translation>Esse limite de velocidade é alto demais.</translation>
        </message>
        <message>
            <source>That speed limit is too low.</source>
            <translation>Esse limite de velocidade é baixo demais.</translation>
        </message>
    </context>
    <context>
        <name>ConsoleMenu</name>
        <message>
            <source>
Napster P2P
  1 JOIN      enter the network and share your folder
  2 SEARCH    find which peers have a file
  3 DOWNLOAD  download a file from a peer
  4 QUIT
  5 TRANSFERS see, pause, resume, retry or cancel downloads
</source>
            <translation>
Napster P2P
  1 JOIN      entrar na rede e compartilhar sua pasta
  2 SEARCH    descobrir quais peers têm um arquivo
  3 DOWNLOAD  baixar um arquivo de um peer
  4 QUIT      sair
  5 TRANSFERS ver, pausar, retomar, tentar de novo ou cancelar downloads
</translation>
        </message>
        <message>
            <source>Unknown option {choice}: type 1, 2, 3, 4 or 5.</source>
            <translation>Opção desconhecida {choice}: digite 1, 2, 3, 4 ou 5.</translation>
        </message>
        <message>
            <source>Connecting to {server} ...</source>
            <translation>Conectando a {server} ...</translation>
        </message>
        <message>
            <source>(retrying by itself; the menu still works)</source>
            <translation>(tentando de novo sozinho; o menu continua funcionando)</translation>
        </message>
        <message>
            <source>Not connected to the index server yet; try again in a moment.</source>
            <translation>Ainda não conectado ao servidor de índice; tente de novo em instantes.</translation>
        </message>
        <message>
            <source>Searching ...</source>
            <translation>Buscando ...</translation>
        </message>
        <message>
            <source>Results (DOWNLOAD takes a number or a name):</source>
            <translation>Resultados (DOWNLOAD aceita um número ou um nome):</translation>
        </message>
        <message>
            <source>  {number}. {name} ({size}): {peers}</source>
            <translation>  {number}. {name} ({size}): {peers}</translation>
        </message>
        <message>
            <source>Downloading {name} ({size}) ...</source>
            <translation>Baixando {name} ({size}) ...</translation>
        </message>
        <message>
            <source>No downloads.</source>
            <translation>Nenhum download.</translation>
        </message>
        <message>
            <source>p N pause, r N resume or retry, c N cancel, d N cancel and delete; Enter: </source>
            <translation>p N pausar, r N retomar ou tentar de novo, c N cancelar, d N cancelar e apagar; Enter: </translation>
        </message>
        <message>
            <source>Unknown command {command}.</source>
            <translation>Comando desconhecido {command}.</translation>
        </message>
        <message>
            <source>Type a letter and a number, for example: c 2</source>
            <translation>Digite uma letra e um número, por exemplo: c 2</translation>
        </message>
        <message>
            <source>Download of {name} is waiting to retry: {reason}</source>
            <translation>O download de {name} aguarda para tentar de novo: {reason}</translation>
        </message>
        <message>
            <source>File name or number: </source>
            <translation>Nome ou número do arquivo: </translation>
        </message>
    </context>
    <context>
        <name>DownloadsModel</name>
        <message>
            <source>{active}/{total} in use</source>
            <translation>{active}/{total} em uso</translation>
        </message>
    </context>
    <context>
        <name>SourcesModel</name>
        <message>
            <source>Peer</source>
            <translation>Peer</translation>
        </message>
        <message>
            <source>State</source>
            <translation>Estado</translation>
        </message>
        <message>
            <source>Speed</source>
            <translation>Velocidade</translation>
        </message>
        <message>
            <source>Pieces</source>
            <translation>Pedaços</translation>
        </message>
        <message>
            <source>Received</source>
            <translation>Recebido</translation>
        </message>
        <message>
            <source>Connecting</source>
            <translation>Conectando</translation>
        </message>
        <message>
            <source>Sending</source>
            <translation>Enviando</translation>
        </message>
        <message>
            <source>Busy, waiting</source>
            <translation>Ocupado, aguardando</translation>
        </message>
        <message>
            <source>Done</source>
            <translation>Concluído</translation>
        </message>
        <message>
            <source>Idle</source>
            <translation>Ocioso</translation>
        </message>
        <message>
            <source>Failed</source>
            <translation>Falhou</translation>
        </message>
        <message>
            <source>Sent bad data</source>
            <translation>Enviou dados corrompidos</translation>
        </message>
        <message>
            <source>Dropped: too slow</source>
            <translation>Descartado: lento demais</translation>
        </message>
        <message>
            <source>Connection</source>
            <translation>Conexão</translation>
        </message>
        <message>
            <source>Direct</source>
            <translation>Direta</translation>
        </message>
        <message>
            <source>Pushed to us (source behind a firewall)</source>
            <translation>Por push (a fonte está atrás de um firewall)</translation>
        </message>
        <message>
            <source>Through the server's relay (speed limited)</source>
            <translation>Pela retransmissão do servidor (velocidade limitada)</translation>
        </message>
        <message>
            <source>You connected straight to the source.</source>
            <translation>Você se conectou diretamente à fonte.</translation>
        </message>
        <message>
            <source>The source is behind a firewall or router, so the index server asked it to connect to you.</source>
            <translation>A fonte está atrás de um firewall ou roteador, então o servidor de índice pediu que ela se conectasse a você.</translation>
        </message>
        <message>
            <source>Neither you nor the source can be reached from outside, so the transfer goes through the index server's relay. Its operator limits the relay's speed, so this source may be slower than the others.</source>
            <translation>Nem você nem a fonte podem ser alcançados de fora, então a transferência passa pela retransmissão do servidor de índice. O operador dele limita a velocidade da retransmissão, por isso esta fonte pode ser mais lenta que as outras.</translation>
        </message>
    </context>
    <context>
        <name>TransferDetails</name>
        <message>
            <source>Select a download to see its pieces and sources.</source>
            <translation>Selecione um download para ver seus pedaços e fontes.</translation>
        </message>
        <message>
            <source>{name}: {done} of {count} pieces, {active} of {known} sources sending</source>
            <translation>{name}: {done} de {count} pedaços, {active} de {known} fontes enviando</translation>
        </message>
    </context>
    <context>
        <name>DownloadsModel</name>
        <message>
            <source>streaming, {size} ahead of the player</source>
            <translation>transmitindo, {size} à frente do player</translation>
        </message>
    </context>
    <context>
        <name>MainWindow</name>
        <message>
            <source>P&amp;lay</source>
            <translation>Re&amp;produzir</translation>
        </message>
        <message>
            <source>Play the selected file in your video player, even while it downloads</source>
            <translation>Reproduzir o arquivo selecionado no seu player de vídeo, mesmo enquanto ele é baixado</translation>
        </message>
        <message>
            <source>Playing in {player}</source>
            <translation>Reproduzindo no {player}</translation>
        </message>
    </context>
    <context>
        <name>Prompts</name>
        <message>
            <source>No video player found</source>
            <translation>Nenhum player de vídeo encontrado</translation>
        </message>
        <message>
            <source>No video player was found. Install mpv or VLC, or choose your player in Settings. Meanwhile, open this address in any player that plays network streams; it plays while the file downloads:

{url}</source>
            <translation>Nenhum player de vídeo foi encontrado. Instale o mpv ou o VLC, ou escolha seu player em Configurações. Enquanto isso, abra este endereço em qualquer player que reproduza transmissões de rede; ele toca enquanto o arquivo é baixado:

{url}</translation>
        </message>
        <message>
            <source>Copy Address</source>
            <translation>Copiar endereço</translation>
        </message>
    </context>
    <context>
        <name>SettingsDialog</name>
        <message>
            <source>Video player:</source>
            <translation>Player de vídeo:</translation>
        </message>
        <message>
            <source>Found automatically (mpv, VLC, ...)</source>
            <translation>Encontrado automaticamente (mpv, VLC, ...)</translation>
        </message>
    </context>
    <context>
        <name>MainWindow</name>
        <message>
            <source>Browse a Peer&apos;s Files</source>
            <translation>Ver os arquivos de um peer</translation>
        </message>
    </context>
    <context>
        <name>SearchPage</name>
        <message>
            <source>Asking the server what {peer} shares…</source>
            <translation>Perguntando ao servidor o que {peer} compartilha…</translation>
        </message>
        <message>
            <source>{peer} shares nothing right now, or has left.</source>
            <translation>{peer} não compartilha nada agora, ou saiu.</translation>
        </message>
        <message>
            <source>{count} files shared by {peer}</source>
            <translation>{count} arquivos compartilhados por {peer}</translation>
        </message>
        <message>
            <source>(the first {count})</source>
            <translation>(os primeiros {count})</translation>
        </message>
    </context>
    <context>
        <name>StatusArea</name>
        <message>
            <source>Lost the connection to {server}: {reason}</source>
            <translation>A conexão com {server} caiu: {reason}</translation>
        </message>
        <message>
            <source>Cannot reach the index server at {server}: {reason}</source>
            <translation>Não foi possível alcançar o servidor de índice em {server}: {reason}</translation>
        </message>
    </context>
    <context>
        <name>Problems</name>
        <message>
            <source>The shared folder {folder} does not exist. Create it or choose another one in Settings.</source>
            <translation>A pasta compartilhada {folder} não existe. Crie-a ou escolha outra em Configurações.</translation>
        </message>
        <message>
            <source>The shared folder {folder} cannot be read: other peers get nothing from it.</source>
            <translation>A pasta compartilhada {folder} não pode ser lida: os outros peers não recebem nada dela.</translation>
        </message>
        <message>
            <source>Both you and the sources of this file are behind firewalls or NATs, and the index server does not relay transfers. Open your listen port to the internet (port forwarding) or use an index server that relays.</source>
            <translation>Você e as fontes deste arquivo estão atrás de firewalls ou NATs, e o servidor de índice não retransmite transferências. Abra sua porta de escuta para a internet (redirecionamento de portas) ou use um servidor de índice que retransmita.</translation>
        </message>
    </context>
    <context>
        <name>RelayPanel</name>
        <message>
            <source>Relay transfers between peers that cannot reach each other</source>
            <translation>Retransmitir transferências entre peers que não conseguem se alcançar</translation>
        </message>
        <message>
            <source>0 = no limit; e.g. 500K, 2M</source>
            <translation>0 = sem limite; ex.: 500K, 2M</translation>
        </message>
        <message>
            <source>Apply</source>
            <translation>Aplicar</translation>
        </message>
        <message>
            <source>Downloader</source>
            <translation>Quem baixa</translation>
        </message>
        <message>
            <source>Holder</source>
            <translation>Quem tem o arquivo</translation>
        </message>
        <message>
            <source>Since</source>
            <translation>Desde</translation>
        </message>
        <message>
            <source>Bytes</source>
            <translation>Bytes</translation>
        </message>
        <message>
            <source>Rate</source>
            <translation>Taxa</translation>
        </message>
        <message>
            <source>Relay port</source>
            <translation>Porta de retransmissão</translation>
        </message>
        <message>
            <source>Limit per transfer</source>
            <translation>Limite por transferência</translation>
        </message>
        <message>
            <source>Limit over all relays</source>
            <translation>Limite total das retransmissões</translation>
        </message>
        <message>
            <source>Relays at once</source>
            <translation>Retransmissões simultâneas</translation>
        </message>
        <message>
            <source>Cannot listen for relays on port {port}: {error}</source>
            <translation>Não é possível escutar retransmissões na porta {port}: {error}</translation>
        </message>
        <message>
            <source>Off: peers that cannot reach each other are told this server does not relay</source>
            <translation>Desligada: peers que não conseguem se alcançar são avisados de que este servidor não retransmite</translation>
        </message>
        <message>
            <source>Relaying on port {port}: {running} now, {awaited} awaited, {total} in all</source>
            <translation>Retransmitindo na porta {port}: {running} agora, {awaited} aguardadas, {total} no total</translation>
        </message>
        <message>
            <source>{field}: “{text}” is not a rate. Write for example 500K or 2M (bytes per second, at least 1K), or 0 for no limit.</source>
            <translation>{field}: “{text}” não é uma taxa. Escreva por exemplo 500K ou 2M (bytes por segundo, no mínimo 1K), ou 0 para sem limite.</translation>
        </message>
    </context>
</TS>
